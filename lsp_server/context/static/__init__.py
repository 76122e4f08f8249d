"""Names placed without jedi: the import map and evident types.

* `names`: the names a target uses and a module's top-level facts.
* `resolver`: `ModuleCache` and `StaticResolver`, the import map through workspace files.
* `evident`, `members`, `convention`: values whose class the code makes evident,
  class members, and naming-convention guesses.
"""

"""Names placed without jedi: the import map and evident types.

* `names`: the names a target uses and a module's top-level facts.
* `modules`: `ModuleCache`, workspace modules chunked once and cached by content.
* `resolver`: `StaticResolver`, the import map through workspace files.
* `evident`: values whose class the code makes evident (``self.x = Cls()``, returns).
* `convention`: naming-convention guesses for parameters (``app_config``: ``AppConfig``).
* `members`, `syntax`: what one class or chunk says by itself (attributes, bindings, returns).
* `protocol`: the `Resolver` interface `evident` and `convention` use (no cycle).
"""

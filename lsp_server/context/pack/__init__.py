"""Context packs: pieces of code fitted to an exact token budget.

* `assembler`: packs for hover, explain and fix (and for retrieved chunks).
* `snippets`: pieces cut from chunks (target, definition, caller, test).
* `pieces`: `ContextPack` and `build_pack`, which fits pieces to the budget.
"""

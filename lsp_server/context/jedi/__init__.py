"""Jedi, behind deadlines: the only sub-package that imports jedi (or parso).

* `symbols`: `SymbolIndex`, the facade the rest of the server calls (cached per text).
* `queries`: the job functions run where jedi runs (facts, definitions, references, callers).
* `process`, `child`: where jedi runs: one child process per workspace, or a thread.
"""

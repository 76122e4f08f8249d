"""Jedi, behind deadlines: the only sub-package that imports jedi (or parso).

* `symbols`: `SymbolIndex`, the facade the rest of the server calls (cached per text).
* `queries`: the job functions run where jedi runs (facts, definitions, references, callers).
* `by_name`: the agent's lookups by symbol name (definitions, references).
* `worker`: the worker interface and the thread worker; `process`, `child`: the
  child process per workspace that the server runs jedi in.
"""

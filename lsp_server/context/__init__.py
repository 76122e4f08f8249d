"""The context engine: what code a model sees for a task, under an exact token budget.

* `chunker`: structure-aware chunks of a module (skeletons, hashes, fingerprints).
* `tokens`, `o200k`: exact offline token counting in the model's encoding.
* `symbols` (+ `jedi_queries`): jedi with deadlines: facts at the cursor,
  definitions, project-wide references, callers; cached per text.
* `jedi_process`, `jedi_child`: where jedi runs: one child process per workspace
  (restarted after a crash or a badly overrun job), or a thread.
* `names`, `resolve`: the names a target uses and the import map that places most
  of them without jedi.
* `snippets`, `pack`: pieces cut from chunks; fitting them to the budget.
* `assembler`: packs for hover, explain and fix (and for retrieved chunks).
* `memory`: multi-turn conversations kept within a budget (summaries cached).
* `retrieval`: embedding search over chunk skeletons, stored in diskcache.
* `lexical`, `corpus`, `hybrid`: workspace questions: identifier-aware BM25 over
  every chunk (kept current by stat and hash), fused with embedding search.
"""

"""The context engine: what code a model sees for a task, under an exact token budget.

Sub-packages, one per subsystem:

* `source`: decoding, piecewise parsing and chunking of Python modules.
* `jedi`: jedi with deadlines, in a child process; the only place that imports jedi.
* `static`: the import map and evident types, which place most names without jedi.
* `index`: the workspace identifier index, callers, and the background warm-up.
* `pack`: packs for hover, explain and fix: pieces cut from chunks, fitted to the budget.
* `retrieval`: workspace questions: BM25 over every chunk fused with embedding search.

At the top: `tokens` and `o200k` (exact offline token counting in the model's
encoding) and `memory` (multi-turn conversations kept within a budget).
"""

"""Workspace questions (Ask): which chunks of the workspace answer them.

* `corpus`: every chunk of the workspace, kept current by stat and hash.
* `lexical`: identifier-aware BM25 and reciprocal-rank fusion.
* `embeddings`: embedding search over chunk skeletons, stored in diskcache.
* `hybrid`: lexical and embedding search fused.
"""

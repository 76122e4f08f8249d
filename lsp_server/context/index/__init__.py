"""The workspace identifier index and what it answers quickly.

* `words`: which files mention a name, and where they call it.
* `callers`: the callers of a function from the index, ranked (ours first).
* `warmup`: the background warm-up that builds the index and the module cache.
"""

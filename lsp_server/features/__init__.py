"""The LSP features: LSP types in, plain values to the pipelines, LSP types out.

Each feature depends on `base.FeatureServer` (what it needs from the server),
never on `server.py`, which registers the handlers.
"""

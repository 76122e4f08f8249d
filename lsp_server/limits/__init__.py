"""Cost controls: budgets (USD and tokens per day and month) and sliding-window rate limits.

`Limiter` (`limiter.py`) is asked by `LlmService.complete` before a request is sent;
its counters live in a `Backend` (`backend.py`: SQLite shared by one user's server
processes; `redis_backend.py`: Redis shared by a team). `build.py` makes both from
settings; `window.py` holds the pure arithmetic and `estimate.py` the cost estimate.
"""

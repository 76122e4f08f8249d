"""The answer cache: exact and structural layers, the fallback tier, in-flight de-duplication.

`AnswerCache` (`store.py`) is the one object the pipelines use; keys come from
`fingerprint.keys_for`, entries and lookup results are in `entry.py`, the
stores (diskcache, Redis) in `backends.py`, shared provider calls in `inflight.py`.
"""

from lsp_server.cache.entry import CachedAnswer, CacheLookup, CacheOutcome
from lsp_server.cache.fingerprint import CacheKeys, code_fingerprint, keys_for
from lsp_server.cache.inflight import InFlight
from lsp_server.cache.store import AnswerCache

__all__ = [
    "AnswerCache",
    "CacheKeys",
    "CacheLookup",
    "CacheOutcome",
    "CachedAnswer",
    "InFlight",
    "code_fingerprint",
    "keys_for",
]

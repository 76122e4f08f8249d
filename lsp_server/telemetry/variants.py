"""Prompt variants: a deterministic split of requests between two prompt templates.

`choose_variant(key, share_b)` maps a key (the hovered symbol's full name, or a
request id) to "a" or "b" by a hash, so the same symbol always gets the same
variant (a repeated hover is then a signal about that variant, not noise from
switching) and the split does not depend on the process or the day. With
``share_b`` 0 (the default) every request gets "a" and nothing changes.
"""

from __future__ import annotations

import hashlib


def choose_variant(key: str, share_b: float) -> str:
    """ "b" for about ``share_b`` of keys (0..1), "a" for the rest; stable per key."""
    if share_b <= 0.0:
        return "a"
    if share_b >= 1.0:
        return "b"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    return "b" if point < share_b else "a"

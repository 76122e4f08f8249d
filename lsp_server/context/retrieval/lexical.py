"""Keyword ranking of chunks: identifier-aware tokens, BM25, and reciprocal rank fusion.

"Where do we handle retries?" should find ``with_retries`` and ``RetryPolicy``
even without embeddings. `tokens` splits text into words the way code names
them: identifiers are cut at underscores and camel-case humps
(``parseHTTPResponse`` -> parse, http, response), lower-cased, lightly stemmed
(retries, retrying, retried -> retry) and stripped of English and Python noise
words. `Bm25` scores documents (here: chunks, their path, qualified name twice,
skeleton and docstring) with Okapi BM25, kept up to date a file at a time.
`fuse` merges several rankings by reciprocal rank fusion, which needs no
calibration between BM25 scores and cosine similarities.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: The usual RRF constant (Cormack et al. 2009): damps the weight of the very top ranks.
RRF_K = 60

_IDENT = re.compile(r"[A-Za-z0-9]+")
_HUMPS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_NOISE = """a an and are as at be by can do does did for from has have how i if in into is it
its of on or our that the their them then there these this to us was we what when where
which who why will with you your def self cls return none true false class import
pass args kwargs lambda"""
STOPWORDS = frozenset(_NOISE.split())


def stem(word: str) -> str:
    """A light suffix stemmer for code words: plurals, -ing, -ed, a final -e."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ied") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ing") and len(word) >= 6:
        word = word[:-3]
    elif word.endswith("ed") and len(word) >= 5:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def split_identifier(name: str) -> list[str]:
    """``with_retries`` -> [with, retries]; ``HTTPServerError`` -> [HTTP, Server, Error]."""
    out: list[str] = []
    for run in _IDENT.findall(name):
        out.extend(_HUMPS.findall(run))
    return out


def tokens(text: str) -> list[str]:
    """The search terms of ``text``: identifier parts, lower-cased, stemmed, no noise words."""
    out: list[str] = []
    for part in split_identifier(text):
        word = part.lower()
        if len(word) < 2 or word in STOPWORDS:
            continue
        out.append(stem(word))
    return out


class Bm25(Generic[K]):
    """Okapi BM25 over documents added and removed by key."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._docs: dict[K, tuple[Counter[str], int, int]] = {}  # terms, length, sequence
        self._sequence = 0
        self._postings: dict[str, set[K]] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, key: K, terms: Iterable[str]) -> None:
        """Index ``terms`` as document ``key`` (replacing an earlier one)."""
        self.remove(key)
        counts = Counter(terms)
        length = sum(counts.values())
        self._sequence += 1
        self._docs[key] = (counts, length, self._sequence)
        for term in counts:
            self._postings.setdefault(term, set()).add(key)
        self._total += length

    def remove(self, key: K) -> None:
        """Forget document ``key`` if present."""
        found = self._docs.pop(key, None)
        if found is None:
            return
        counts, length, _ = found
        for term in counts:
            posting = self._postings.get(term)
            if posting is not None:
                posting.discard(key)
                if not posting:
                    del self._postings[term]
        self._total -= length

    def rank(self, query: Sequence[str], k: int) -> list[tuple[float, K]]:
        """The ``k`` best documents with a positive score, best first (deterministic)."""
        n = len(self._docs)
        if n == 0:
            return []
        terms = [t for t in dict.fromkeys(query) if t in self._postings]
        if not terms:
            return []
        df = {t: len(self._postings[t]) for t in terms}
        idf = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
        average = self._total / n or 1.0
        candidates: set[K] = set().union(*(self._postings[t] for t in terms))
        scored: list[tuple[float, int, K]] = []
        for key in candidates:
            counts, length, sequence = self._docs[key]
            score = 0.0
            norm = self.k1 * (1.0 - self.b + self.b * length / average)
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    score += idf[term] * tf * (self.k1 + 1.0) / (tf + norm)
            if score > 0.0:
                scored.append((score, sequence, key))
        scored.sort(key=lambda s: (-s[0], s[1]))  # ties: the earlier document first
        return [(score, key) for score, _, key in scored[:k]]


def fuse(rankings: Sequence[Sequence[K]], k: int = RRF_K) -> list[tuple[float, K]]:
    """Reciprocal rank fusion: each item scores the sum of 1 / (k + rank) over rankings.

    Ties keep the order of first appearance (the first ranking's order first).
    """
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(((s, key) for key, s in scores.items()), key=lambda s: (-s[0], order[s[1]]))

"""The code an answer to a workspace question was given, and how the answer lists it.

`sources_of` turns the retrieved hits and the packed pieces into `Source` entries
(best first), `listing` shows them under the answer, `answer_title` heads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsp_server.context.pack.pieces import ContextPack
from lsp_server.context.retrieval.embeddings import Hit

TITLE_CHARS = 100


@dataclass(frozen=True, slots=True)
class Source:
    """A piece of code the answer was given: ``path:start-end`` (1-based, inclusive)."""

    path: str
    start: int
    end: int
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        """The source as a command's answer carries it."""
        return {"path": self.path, "start": self.start, "end": self.end}


def answer_title(question: str) -> str:
    """The question on one line, cut at `TITLE_CHARS`."""
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def sources_of(hits: list[Hit], pack: ContextPack) -> tuple[Source, ...]:
    """The pack's pieces in the order of the hits (best first)."""
    out: list[Source] = []
    for hit in hits:
        for piece in pack.pieces:
            if piece.covers(hit.path, hit.chunk.start_line):
                source = Source(piece.path, piece.start_line, piece.end_line, piece.title)
                if source not in out:
                    out.append(source)
    return tuple(out)


def listing(sources: tuple[Source, ...]) -> str:
    """The sources as a markdown list, best first."""
    if not sources:
        return "_No code in the workspace matched the question._"
    return "\n".join(f"- `{s.path}:{s.start}-{s.end}` {s.title}".rstrip() for s in sources)

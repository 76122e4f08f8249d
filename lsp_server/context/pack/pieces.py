"""A context pack: labelled pieces of code chosen by priority under an exact token budget.

The budget covers the rendered pack (`ContextPack.render`), counted with the
task's `TokenCounter` (so it includes the safety margin when the count is not
exact); the prompt around it (system message, question, chat overhead) is
outside it. `build_pack` is pure: candidates in priority order go in while
they fit, each in full, as a skeleton or cut on a line boundary; the chosen
pieces are then *rendered* in a stable order (definitions from other files
first, the target last) so that, across requests about the same code, the
prompt keeps a long common prefix for providers' prompt caching. The
rendered text is counted once more at the end and the lowest-priority piece
dropped until it fits, so a pack never exceeds its budget. Same inputs,
byte-identical output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import IntEnum

from lsp_server.context.tokens import TokenCounter
from lsp_server.safe_markdown import fence

logger = logging.getLogger(__name__)

#: Below this many tokens of room a cut piece is not worth its header.
MIN_CUT_TOKENS = 16
#: Tokens kept free per piece for the joins between pieces (merges across a join).
JOIN_SLACK = 2


class Role(IntEnum):
    """What a piece is for; the value is its rendering rank (stable parts first)."""

    FOCUS = -1  # a hover's own name: its definition (and its class skeleton)
    DEFINITION = 0  # in another file
    TEST = 1
    CALLER = 2
    IMPORTS = 3
    CLASS = 4  # the enclosing class skeleton
    LOCAL_DEFINITION = 5  # in the target's own file
    TARGET = 6

    @property
    def word(self) -> str:
        return _ROLE_WORDS[self]


_ROLE_WORDS = {
    Role.FOCUS: "definition of the hovered name",
    Role.DEFINITION: "definition",
    Role.TEST: "related test",
    Role.CALLER: "caller",
    Role.IMPORTS: "imports in use",
    Role.CLASS: "enclosing class",
    Role.LOCAL_DEFINITION: "definition",
    Role.TARGET: "target",
}


#: Roles that share floor reservations (a definition is a definition wherever it lives).
_GROUPS = {Role.LOCAL_DEFINITION: Role.DEFINITION.value}


@dataclass(frozen=True, slots=True)
class ContextPiece:
    """One labelled piece of code in a pack."""

    label: str  # "path:start-end"
    role: str  # "target" | "definition" | "enclosing class" | "imports in use" | ...
    title: str  # e.g. "function `Foo.run`"
    text: str
    form: str  # "full" | "skeleton" | "signature" | "truncated" | "window"
    path: str = ""
    start_line: int = 0  # 1-based, inclusive; the lines the label names
    end_line: int = 0
    tokens: int = 0  # of render(), counted when the piece was fitted (0: not counted)

    def render(self) -> str:
        """Markdown for the prompt."""
        note = "" if self.form == "full" else f", {self.form}"
        return f"### {self.label} ({self.role}: {self.title}{note})\n{fence(self.text, 'python')}\n"

    def covers(self, path: str, line: int) -> bool:
        """Whether the piece's label names ``line`` of ``path``."""
        return self.path == path and self.start_line <= line <= self.end_line


@dataclass(frozen=True, slots=True)
class ContextPack:
    """The pieces chosen for a task, with their exact token count."""

    pieces: tuple[ContextPiece, ...]
    tokens: int  # of render(), counted with the task's counter
    budget: int
    exact_count: bool
    dropped: tuple[str, ...] = ()  # labels of candidates that did not fit
    notes: tuple[str, ...] = ()  # said before the pieces (a hovered name not shown, why)

    def render(self) -> str:
        """All pieces as one markdown block, after the notes."""
        return _render(self.notes, self.pieces)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A piece that may go into a pack, with how it may shrink and where it renders."""

    piece: ContextPiece  # in full
    role: Role
    skeleton: str | None = None  # shown instead when the full text does not fit
    full_share: float = 1.0  # in full only if it takes at most this share of the room left
    cut: bool = True  # may be cut on a line boundary when even the skeleton is too big
    focus_line: int | None = None  # for a cut target: keep the lines around this one
    floor: str | None = None  # the least worth showing (a signature); its room is reserved


def piece(
    path: str, start: int, end: int, role: Role, title: str, text: str, form: str = "full"
) -> ContextPiece:
    """A piece labelled ``path:start-end``."""
    return ContextPiece(f"{path}:{start}-{end}", role.word, title, text, form, path, start, end)


def _window(p: ContextPiece, counter: TokenCounter, room: int, focus: int) -> ContextPiece | None:
    """The largest line window around ``focus`` whose rendering fits in ``room``."""
    lines = p.text.split("\n")
    at = min(max(focus - p.start_line, 0), len(lines) - 1)
    lo, hi, best = 0, len(lines), None
    while lo <= hi:
        radius = (lo + hi) // 2
        a, b = max(0, at - radius), min(len(lines), at + radius + 1)
        text = "\n".join(lines[a:b])
        start, end = p.start_line + a, p.start_line + b - 1
        candidate = replace(
            p, label=f"{p.path}:{start}-{end}", text=text, form="window", start_line=start,
            end_line=end,
        )  # fmt: skip
        if counter.count(candidate.render()) <= room:
            best, lo = candidate, radius + 1
        else:
            hi = radius - 1
    return best


def fit(c: Candidate, counter: TokenCounter, room: int) -> ContextPiece | None:
    """The candidate in full, as a skeleton, or cut, within ``room`` tokens; else None."""
    if room <= 0:
        return None
    full = c.piece
    if counter.count(full.render()) <= min(room, int(room * c.full_share)):
        return full
    if c.skeleton is not None and c.skeleton != full.text:
        slim = replace(full, text=c.skeleton, form="skeleton")
        if counter.count(slim.render()) <= room:
            return slim
    if not c.cut:
        return None
    if c.focus_line is not None:
        return _window(full, counter, room, c.focus_line)
    base = full if c.skeleton is None else replace(full, text=c.skeleton)
    overhead = counter.count(replace(base, text="", form="truncated").render())
    if room - overhead < MIN_CUT_TOKENS:
        return None
    text = counter.truncate(base.text, room - overhead).rstrip("\n")
    if not text:
        return None
    return replace(base, text=text, form="truncated")


def _floor(c: Candidate) -> ContextPiece | None:
    return None if c.floor is None else replace(c.piece, text=c.floor, form="signature")


def _render(notes: tuple[str, ...], pieces: tuple[ContextPiece, ...]) -> str:
    head = "".join(f"{n}\n\n" for n in notes)
    return head + "\n".join(p.render() for p in pieces)


def _render_key(p: ContextPiece, role: Role, rank: int) -> tuple[int, str, int, int, int]:
    if role is Role.FOCUS:  # a hover's definition, then its class: in priority order
        return (role.value, "", rank, 0, 0)
    return (role.value, p.path, p.start_line, p.end_line, rank)


def build_pack(
    candidates: list[Candidate],
    counter: TokenCounter,
    budget: int,
    notes: tuple[str, ...] = (),
) -> ContextPack:
    """Fill ``budget`` tokens with ``candidates`` (highest priority first); see the docstring.

    ``notes`` go first, before any piece (they are short; a pack of notes alone that
    does not fit is empty)."""
    chosen: list[tuple[int, Role, ContextPiece]] = []
    dropped: list[str] = []
    seen: set[str] = set()
    left = budget - (counter.count(_render(notes, ())) + JOIN_SLACK if notes else 0)
    floors = [_floor(c) for c in candidates]
    costs = [0 if f is None else counter.count(f.render()) + JOIN_SLACK for f in floors]
    # Room kept for the floors of later candidates of the same group, so that one
    # large definition does not crowd out the signatures of the others.
    reserved = [0] * len(candidates)
    pending: dict[int, int] = {}
    for i in range(len(candidates) - 1, -1, -1):
        group = _GROUPS.get(candidates[i].role, candidates[i].role.value)
        reserved[i] = pending.get(group, 0)
        pending[group] = reserved[i] + costs[i]
    for rank, c in enumerate(candidates):
        if c.piece.label in seen:
            continue
        fitted = fit(c, counter, left - JOIN_SLACK - reserved[rank])
        floor = floors[rank]
        if fitted is None and floor is not None and costs[rank] <= left - reserved[rank]:
            fitted = floor
        if fitted is None:
            dropped.append(c.piece.label)
            continue
        seen.add(c.piece.label)
        fitted = replace(fitted, tokens=counter.count(fitted.render()))
        chosen.append((rank, c.role, fitted))
        left -= fitted.tokens + JOIN_SLACK
    chosen.sort(key=lambda item: _render_key(item[2], item[1], item[0]))
    # The final count is authoritative: drop the lowest priority until it fits.
    while chosen:
        pieces = tuple(p for _, _, p in chosen)
        tokens = counter.count(_render(notes, pieces))
        if tokens <= budget:
            return ContextPack(pieces, tokens, budget, counter.exact, tuple(dropped), notes)
        worst = max(range(len(chosen)), key=lambda i: chosen[i][0])
        logger.debug("pack over budget (%d > %d): dropping %s", tokens, budget, pieces[worst].label)
        dropped.append(pieces[worst].label)
        del chosen[worst]
    tokens = counter.count(_render(notes, ()))
    if notes and tokens <= budget:
        return ContextPack((), tokens, budget, counter.exact, tuple(dropped), notes)
    return ContextPack((), 0, budget, counter.exact, tuple(dropped))

"""The parse check of a fix draft: libcst in a child process that may crash or stall alone.

The draft is the model's text, so it is parsed in a child process
(`isolation.python_command`: ``python -I`` in a private directory with an
allow-listed environment) capped at `PARSE_MEMORY` bytes of address space and
a CPU budget growing with the text (`parse_cpu_budget`), plus a wall-clock
limit. In the server process libcst segfaulted on ~40 KB of nested lambdas
(after 69 s and 3 GB) and held the GIL for 12 s on a 7 KB ``1+1+...`` chain;
in the child, either ends in the child's death and the draft is rejected with
the reason (a `ParseError` at line 1), while the server keeps answering.
Measured on 2 busy cores (load ~10): a child costs ~2 s per draft (interpreter
start plus libcst's import), where the in-process parse of a small file took
0.02 s; a 150 KB module takes ~5 s instead of ~3 s.
"""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import dataclass
from typing import Any

from lsp_server.agent.process import ProcessResult, ProcessTimeout, run_process
from lsp_server.isolation import child_env, limit_preamble, private_cwd, python_command

logger = logging.getLogger(__name__)

#: Address space of the parse child (a 150 KB module parses in ~70 MB resident).
PARSE_MEMORY = 1 << 30
_PARSE_SCRIPT = """\
import json, sys
import libcst
def report(line, column, message):
    sys.stdout.write(json.dumps({"line": line, "column": column, "message": message}))
try:
    libcst.parse_module(sys.stdin.buffer.read().decode("utf-8"))
except libcst.ParserSyntaxError as e:
    report(e.raw_line, e.raw_column + 1, e.message)
except RecursionError:
    report(1, 1, "the code is nested too deeply to parse")
except MemoryError:
    report(1, 1, "parsing the code needs too much memory (nested too deeply?)")
"""


class CheckUnavailable(Exception):
    """A check could not run at all; not the draft's fault."""


@dataclass(frozen=True, slots=True)
class ParseError:
    """Where and why the edited text does not parse (1-based line and column)."""

    line: int
    column: int
    message: str
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "code": self.code,
        }


def parse_cpu_budget(text: str) -> int:
    """CPU seconds the parse child may use: ~1 s of start-up plus 1 s per 20,000 characters
    (a 150 KB module takes ~2 s; the 7 KB ``1+1+...`` chain takes 12 s)."""
    return min(3 + len(text) // 20_000, 120)


def _gave_up(result: ProcessResult, cpu: int) -> str | None:
    """Why the parser died on the draft (a signal, its limits), or None if it just failed."""
    code = result.returncode
    if code < 0:
        if -code == getattr(signal, "SIGXCPU", 0):
            return f"parsing it took more than {cpu} s of CPU time"
        return f"the parser crashed on it (signal {-code})"
    if "MemoryError" in result.stderr or "memory allocation" in result.stderr:
        return "parsing it needs too much memory"
    return None


async def check_parse(text: str, *, time_limit: float | None = None) -> ParseError | None:
    """The libcst parse error of ``text``, or None; `CheckUnavailable` if it cannot run.

    A draft that makes the parser crash, stall or run out of memory is a parse
    error at line 1 saying so (the model can simplify it).
    """
    cpu = parse_cpu_budget(text)
    wall = time_limit if time_limit is not None else 3.0 * cpu + 10.0
    script = limit_preamble(memory_bytes=PARSE_MEMORY, cpu_seconds=cpu) + _PARSE_SCRIPT
    try:
        result = await run_process(
            python_command(script),
            cwd=private_cwd(),
            time_limit=wall,
            stdin=text.encode("utf-8", errors="replace"),
            env=child_env(),
        )
    except ProcessTimeout:
        return ParseError(1, 1, f"the parser gave up: parsing took longer than {wall:g} s")
    except OSError as exc:
        raise CheckUnavailable(f"the parser could not be started: {exc}") from exc
    if result.returncode != 0:
        why = _gave_up(result, cpu)
        if why is None:
            raise CheckUnavailable(f"the parser failed: {result.stderr.strip()[-300:]}")
        logger.info("parse check: %s (%d characters)", why, len(text))
        return ParseError(1, 1, f"the parser gave up: {why}; simplify the code")
    try:
        error = ParseError(**json.loads(result.stdout)) if result.stdout.strip() else None
    except (ValueError, TypeError) as exc:
        raise CheckUnavailable(f"the parser printed something unexpected: {exc}") from exc
    if error is not None:
        lines = text.splitlines()
        code = lines[error.line - 1].strip()[:200] if 0 < error.line <= len(lines) else ""
        error = ParseError(error.line, error.column, error.message, code)
    return error

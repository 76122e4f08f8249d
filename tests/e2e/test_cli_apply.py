"""`llm-lsp fix --apply` keeps the file as it was around the edit, and never writes over a change.

Each case writes a file with one peculiarity (exec mode, CRLF, CR, latin-1 under
its cookie, bytes that do not decode, a BOM), runs the real CLI against the fake
provider, and compares the file byte for byte with the expected result: only
the edited line differs, its replacement in the file's encoding and endings.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, server_env

FIX = ["    if not values:", "        return 0.0", "    return sum(values) / len(values)"]
TARGET = "shop/peculiar.py"


@dataclass(frozen=True)
class Case:
    name: str
    head: bytes  # the first line
    name_line: bytes  # line 3: a non-ASCII string in the file's encoding (or bad bytes)
    eol: bytes = b"\n"
    bom: bytes = b""
    mode: int = 0o644
    replacement: str = "\n".join(FIX) + "\n"


CASES = [
    Case("exec-mode", b"#!/usr/bin/env python3", "NAME = 'café'".encode(), mode=0o755),
    Case("crlf", b"# crlf", "NAME = 'café'".encode(), eol=b"\r\n"),
    Case("cr", b"# cr", "NAME = 'café'".encode(), eol=b"\r"),
    Case("latin-1", b"# -*- coding: latin-1 -*-", "NAME = 'café'".encode("latin-1")),
    Case("invalid-bytes", b"# invalid bytes below", b"NAME = 'caf\xff\xfe'"),
    Case("bom", b"# bom", "NAME = 'café'".encode(), bom=b"\xef\xbb\xbf", eol=b"\r\n"),
]


def _lines(case: Case) -> list[bytes]:
    return [
        case.head,
        b'"""Statistics."""',
        case.name_line,
        b"",
        b"def average(values: list[float]) -> float:",
        b"    return sum(values) / len(values)",
    ]


def _file(case: Case, lines: list[bytes]) -> bytes:
    return case.bom + case.eol.join(lines) + case.eol


def _propose(replacement: str) -> Step:
    arguments = {
        "path": TARGET,
        "start_line": 6,
        "end_line": 6,
        "replacement": replacement,
        "explanation": "Guard the empty list.",
    }
    return Step(tool_calls=[{"name": "propose_fix", "arguments": arguments}])


def _command(target: Path) -> list[str]:
    return [sys.executable, "-m", "lsp_server", "fix", f"{target}:6", "--apply"]


def _env(tmp_path: Path, fake: FakeProvider) -> dict[str, str]:
    return server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_apply_keeps_mode_endings_encoding_and_bom(
    workspace: Path, tmp_path: Path, fake: FakeProvider, case: Case
) -> None:
    target = workspace / TARGET
    target.write_bytes(_file(case, _lines(case)))
    target.chmod(case.mode)
    fake.script(_propose(case.replacement))
    result = subprocess.run(
        _command(target),
        env=_env(tmp_path, fake),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    expected = _file(case, [*_lines(case)[:5], *(line.encode() for line in FIX)])
    assert target.read_bytes() == expected
    assert stat.S_IMODE(target.stat().st_mode) == case.mode
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("case", "replacement", "message"),
    [
        (CASES[3], "    return sum(values) / len(values)  # ≠ empty\n", "cannot encode"),
        (
            Case("invalid-line-6", b"# x", b"X = 1"),
            # the model changes a line it was shown with U+FFFD for the bad byte
            "    return sum(values) / max(len(values), 1)  # caf\ufffd\n",
            "not valid utf-8",
        ),
    ],
    ids=["unencodable", "replacement-character"],
)
def test_apply_refuses_what_the_file_cannot_hold(
    workspace: Path, tmp_path: Path, fake: FakeProvider, case: Case, replacement: str, message: str
) -> None:
    target = workspace / TARGET
    lines = _lines(case)
    if case.name == "invalid-line-6":
        lines[5] += b"  # caf\xff"
    before = _file(case, lines)
    target.write_bytes(before)
    fake.script(_propose(replacement))
    result = subprocess.run(
        _command(target), env=_env(tmp_path, fake), capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert message in stderr and "not written" in stderr and "Traceback" not in stderr
    assert target.read_bytes() == before


def test_apply_never_writes_over_a_file_changed_meanwhile(
    workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    case = CASES[1]
    target = workspace / TARGET
    target.write_bytes(_file(case, _lines(case)))
    step = _propose(case.replacement)
    fake.script(Step(tool_calls=step.tool_calls, delay=3.0))
    with subprocess.Popen(
        _command(target),
        env=_env(tmp_path, fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        fake.wait_for_requests(1, 60.0, finished=False)
        edited = target.read_bytes().replace(b"'caf", b"'CAF")
        target.write_bytes(edited)  # the user saves while the model is thinking
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "changed while the fix was computed; not written" in stderr.decode()
    assert target.read_bytes() == edited
    assert os.listdir(target.parent) == os.listdir(workspace / "shop")
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]

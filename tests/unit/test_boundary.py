"""The workspace boundary's rules on their own: links, special files, caps, secrets, ignores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_server.workspace import Refused, WorkspaceBoundary

MARKER = "MARKER-OUTSIDE-7f3a"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (root / "main.py").write_text("from pkg.mod import f\n")
    return root


def _listed(boundary: WorkspaceBoundary) -> list[str]:
    assert boundary.root is not None
    return [p.relative_to(boundary.root).as_posix() for p in boundary.iter_files()]


def test_plain_files_are_inside_and_listed(ws: Path) -> None:
    boundary = WorkspaceBoundary(ws)
    assert _listed(boundary) == ["main.py", "pkg/__init__.py", "pkg/mod.py"]
    assert boundary.read(ws / "pkg" / "mod.py") == "def f():\n    return 1\n"
    assert boundary.display_path(ws / "pkg" / "mod.py") == "pkg/mod.py"
    assert boundary.relative(ws) == "."


def test_symlink_inside_the_root_is_followed(ws: Path) -> None:
    (ws / "alias.py").symlink_to(ws / "pkg" / "mod.py")
    boundary = WorkspaceBoundary(ws)
    assert boundary.contains(ws / "alias.py")
    assert boundary.read(ws / "alias.py").startswith("def f()")
    assert "alias.py" in _listed(boundary)


def test_symlink_out_of_the_root_is_refused(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text(f"SECRET = '{MARKER}'\n")
    (ws / "leak.py").symlink_to(outside)
    (ws / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    boundary = WorkspaceBoundary(ws)
    with pytest.raises(Refused) as info:
        boundary.read(ws / "leak.py")
    assert info.value.kind == "outside"
    assert "symbolic link" in info.value.message
    assert boundary.read_text(ws / "linked_dir" / "outside.py") is None
    assert boundary.read_text(outside) is None
    listed = _listed(boundary)
    assert "leak.py" not in listed and not any(p.startswith("linked_dir") for p in listed)


@pytest.mark.parametrize("target", ["/dev/zero", "/proc/self/environ"])
def test_links_to_special_files_are_refused(ws: Path, target: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} does not exist here")
    (ws / "special.py").symlink_to(target)
    boundary = WorkspaceBoundary(ws)
    with pytest.raises(Refused) as info:
        boundary.read(ws / "special.py")
    assert info.value.kind == "outside"
    assert "special.py" not in _listed(boundary)


def test_fifo_is_refused_without_blocking(ws: Path) -> None:
    os.mkfifo(ws / "pipe.py")
    boundary = WorkspaceBoundary(ws)
    with pytest.raises(Refused) as info:
        boundary.read(ws / "pipe.py")  # would block forever if opened for a plain read
    assert info.value.kind == "not_a_file"
    assert "pipe.py" not in _listed(boundary)


def test_a_directory_is_not_a_file(ws: Path) -> None:
    with pytest.raises(Refused) as info:
        WorkspaceBoundary(ws).read(ws / "pkg")
    assert info.value.kind == "not_a_file"


def test_byte_cap_on_every_read(ws: Path) -> None:
    (ws / "big.py").write_text("x = 1\n" * 100)  # 600 bytes
    boundary = WorkspaceBoundary(ws, max_bytes=599)
    with pytest.raises(Refused) as info:
        boundary.read(ws / "big.py")
    assert info.value.kind == "too_large"
    assert WorkspaceBoundary(ws, max_bytes=600).read(ws / "big.py").count("\n") == 100
    assert boundary.read_text(ws / "big.py", max_bytes=10_000) is not None


def test_missing_file(ws: Path) -> None:
    with pytest.raises(Refused) as info:
        WorkspaceBoundary(ws).read(ws / "nope.py")
    assert info.value.kind == "missing"


SECRETS = [
    ".env",
    ".env.local",
    ".env.production",
    ".envrc",
    "prod.env",
    "id_rsa",
    "id_rsa.pub",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "server.pem",
    "server.key",
    "cert.p12",
    "cert.pfx",
    "store.jks",
    "release.keystore",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    ".pgpass",
    "credentials.json",
    "credentials-prod.json",
    "secrets.py",
    "secrets.yaml",
    "service-account.json",
    "service-account-prod.json",
    ".aws/credentials",
    ".aws/config",
    ".ssh/config",
    ".ssh/id_ecdsa",
    ".gnupg/pubring.kbx",
    ".docker/config.json",
    ".kube/config",
    ".git/config",
    ".hg/hgrc",
    ".svn/entries",
    "config/.config/gh/hosts.yml",
    "deploy/.env",
]


@pytest.mark.parametrize("spelling", ["lower", "upper"])
@pytest.mark.parametrize("rel", SECRETS)
def test_secret_files_are_never_read_nor_listed(ws: Path, rel: str, spelling: str) -> None:
    if spelling == "upper":
        rel = rel.upper()
    path = ws / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"TOKEN={MARKER}\n")
    boundary = WorkspaceBoundary(ws, buffers=lambda p: f"TOKEN={MARKER}" if p == path else None)
    with pytest.raises(Refused) as info:
        boundary.read(path)  # an open buffer of a secret file is refused too
    assert info.value.kind in ("secret", "skipped")
    assert MARKER not in repr(info.value.message)
    assert rel not in _listed(boundary)


@pytest.mark.parametrize("name", ["envs.py", "keys.py", "secret_santa.py", "pem.py"])
def test_ordinary_names_are_not_secret(ws: Path, name: str) -> None:
    (ws / name).write_text("x = 1\n")
    assert WorkspaceBoundary(ws).contains(ws / name)


def test_symlink_to_a_secret_inside_the_root_is_refused(ws: Path) -> None:
    (ws / ".env").write_text(f"KEY={MARKER}\n")
    (ws / "settings.py").symlink_to(ws / ".env")
    with pytest.raises(Refused) as info:
        WorkspaceBoundary(ws).read(ws / "settings.py")
    assert info.value.kind == "secret"


def test_gitignore_is_respected(ws: Path) -> None:
    (ws / ".gitignore").write_text("generated/\n*_pb2.py\n!keep_pb2.py\n")
    (ws / "generated").mkdir()
    (ws / "generated" / "big.py").write_text("x = 1\n")
    (ws / "pkg" / "api_pb2.py").write_text("x = 1\n")
    (ws / "pkg" / "keep_pb2.py").write_text("x = 1\n")
    boundary = WorkspaceBoundary(ws)
    listed = _listed(boundary)
    assert "generated/big.py" not in listed and "pkg/api_pb2.py" not in listed
    assert "pkg/keep_pb2.py" in listed
    with pytest.raises(Refused) as info:
        boundary.read(ws / "generated" / "big.py")
    assert info.value.kind == "ignored"


def test_nested_gitignore_applies_below_its_directory(ws: Path) -> None:
    (ws / "pkg" / ".gitignore").write_text("local_*.py\n")
    (ws / "pkg" / "local_settings.py").write_text("x = 1\n")
    (ws / "local_top.py").write_text("x = 1\n")
    boundary = WorkspaceBoundary(ws)
    assert not boundary.contains(ws / "pkg" / "local_settings.py")
    assert boundary.contains(ws / "local_top.py")  # the rule lives in pkg/ only
    listed = _listed(boundary)
    assert "pkg/local_settings.py" not in listed and "local_top.py" in listed


def test_llmlspignore_keeps_code_on_the_machine(ws: Path) -> None:
    (ws / ".llmlspignore").write_text("proprietary/\npkg/mod.py\n")
    (ws / ".gitignore").write_text("!proprietary/\n")  # cannot bring it back
    (ws / "proprietary").mkdir()
    (ws / "proprietary" / "algo.py").write_text(f"K = '{MARKER}'\n")
    boundary = WorkspaceBoundary(ws)
    assert [p for p in _listed(boundary) if p.endswith(".py")] == ["main.py", "pkg/__init__.py"]
    assert boundary.read_text(ws / "proprietary" / "algo.py") is None
    assert boundary.read_text(ws / "pkg" / "mod.py") is None


def test_an_edited_ignore_file_counts_after_document_changed(ws: Path) -> None:
    boundary = WorkspaceBoundary(ws)
    assert boundary.contains(ws / "main.py")
    (ws / ".llmlspignore").write_text("main.py\n")
    boundary.document_changed(ws / ".llmlspignore")
    assert not boundary.contains(ws / "main.py")


@pytest.mark.parametrize("name", ["env", "whatever", "venv", ".venv"])
def test_virtualenvs_are_skipped_whatever_their_name(ws: Path, name: str) -> None:
    venv = ws / name
    (venv / "lib" / "site-packages" / "dep").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "site-packages" / "dep" / "core.py").write_text("x = 1\n")
    (venv / "tool.py").write_text("x = 1\n")
    boundary = WorkspaceBoundary(ws)
    assert not any(p.startswith(name + "/") for p in _listed(boundary))
    assert not boundary.contains(venv / "tool.py")


def test_a_package_called_env_without_pyvenv_cfg_is_code(ws: Path) -> None:
    (ws / "env").mkdir()
    (ws / "env" / "config.py").write_text("x = 1\n")
    assert "env/config.py" in _listed(WorkspaceBoundary(ws))


@pytest.mark.parametrize(
    "directory", ["node_modules", "__pycache__", ".tox", ".git", "build", "x.egg-info", ".hidden"]
)
def test_skip_directories(ws: Path, directory: str) -> None:
    (ws / directory).mkdir()
    (ws / directory / "m.py").write_text("x = 1\n")
    boundary = WorkspaceBoundary(ws)
    assert not boundary.contains(ws / directory / "m.py")
    assert f"{directory}/m.py" not in _listed(boundary)


def test_walk_stops_at_the_file_cap(ws: Path) -> None:
    for i in range(10):
        (ws / f"m{i}.py").write_text("")
    assert len(list(WorkspaceBoundary(ws, max_files=4).iter_files())) == 4
    assert len(list(WorkspaceBoundary(ws).iter_python_files(limit=7))) == 7


def test_buffers_win_over_the_disk(ws: Path) -> None:
    target = ws / "main.py"
    boundary = WorkspaceBoundary(ws, buffers=lambda p: "UNSAVED = 1\n" if p == target else None)
    assert boundary.read(target) == "UNSAVED = 1\n"
    data, _ = boundary.read_bytes(target)
    assert data == b"from pkg.mod import f\n"  # the saved file


def test_single_file_mode_holds_that_file_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"aws_secret_access_key={MARKER}\n")
    (home / "notes.py").write_text(f"TOKEN = '{MARKER}'\n")
    alone = home / "alone.py"
    alone.write_text("print('hi')\n")
    boundary = WorkspaceBoundary.single_file(alone)
    assert boundary.single and boundary.root is None
    assert boundary.read(alone) == "print('hi')\n"
    assert boundary.display_path(alone) == "alone.py"
    assert list(boundary.iter_files()) == [alone.resolve()]
    for other in (home / "notes.py", home / ".aws" / "credentials", home):
        with pytest.raises(Refused) as info:
            boundary.read(other)
        assert info.value.kind == "outside"


def test_single_file_mode_follows_the_editors_open_documents(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("A = 1\n")
    b.write_text("B = 1\n")
    open_docs = {a: "A = 2\n"}
    boundary = WorkspaceBoundary(None, buffers=open_docs.get)
    assert not boundary.contains(a)
    boundary.document_changed(a)  # didOpen
    assert boundary.read(a) == "A = 2\n" and not boundary.contains(b)
    del open_docs[a]
    boundary.document_changed(a)  # didClose
    assert not boundary.contains(a)


def test_single_file_mode_refuses_a_secret_opened_alone(tmp_path: Path) -> None:
    key = tmp_path / ".ssh" / "id_ecdsa"
    key.parent.mkdir()
    key.write_text(MARKER)
    with pytest.raises(Refused) as info:
        WorkspaceBoundary.single_file(key).read(key)
    assert info.value.kind == "secret"


def test_jedi_reads_no_special_file_and_at_most_the_cap(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import parso.file_io

    from lsp_server.context.jedi import safe_reads as jedi_io

    jedi_io.guard_parso_reads()
    monkeypatch.setattr(jedi_io, "MAX_JEDI_BYTES", 100)
    (ws / "big.py").write_text("x = 1\n" * 100)
    os.mkfifo(ws / "pipe.py")
    assert parso.file_io.FileIO(ws / "main.py").read() == b"from pkg.mod import f\n"
    assert parso.file_io.FileIO(ws / "big.py").read() == b""
    assert parso.file_io.FileIO(ws / "pipe.py").read() == b""  # no wait for a writer
    with pytest.raises(FileNotFoundError):
        parso.file_io.FileIO(ws / "missing.pyi").read()  # jedi probes for stubs so


def test_quotable_facts_come_from_the_boundary_or_a_library(ws: Path, tmp_path: Path) -> None:
    import json

    (ws / ".llmlspignore").write_text("pkg/mod.py\n")
    outside = tmp_path / "neighbour.py"
    outside.write_text("x = 1\n")
    boundary = WorkspaceBoundary(ws)
    assert boundary.quotable(ws / "main.py") and boundary.quotable(None)
    assert boundary.quotable(Path(json.__file__))  # the standard library
    assert not boundary.quotable(ws / "pkg" / "mod.py")  # ignored
    assert not boundary.quotable(outside)  # beside the workspace, not a library


def test_may_send_the_open_document_unless_secret_or_ignored(ws: Path, tmp_path: Path) -> None:
    (ws / ".llmlspignore").write_text("pkg/mod.py\n")
    outside = tmp_path / "lib.py"
    outside.write_text("x = 1\n")
    secret = tmp_path / ".env"
    secret.write_text("K=1\n")
    open_docs = {p: "x = 1\n" for p in (outside, secret, ws / "pkg" / "mod.py")}
    boundary = WorkspaceBoundary(ws, open_docs.get)
    assert boundary.may_send(ws / "main.py") and boundary.may_send(None)
    assert boundary.may_send(outside)  # the user opened it
    assert not boundary.may_send(secret)
    assert not boundary.may_send(ws / "pkg" / "mod.py")  # .llmlspignore wins over opening it
    assert not WorkspaceBoundary(ws).may_send(outside)  # not open: not sent

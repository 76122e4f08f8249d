"""Applying a change to a file's bytes so that everything outside the change stays as it was.

The engine and the agent work on decoded, normalised text (`pysource.decode_source`:
PEP 263 cookie or UTF-8, BOM dropped, line breaks turned into LF, undecodable
bytes shown as U+FFFD). Writing that text back would lose what the
normalisation dropped: CRLF or CR line endings (or a mix), a latin-1 encoding
under its coding cookie, the BOM, bytes that do not decode. `apply_text_change`
maps the change between two normalised texts onto the original bytes instead:
every line the change leaves alone keeps its bytes and its line ending (lines
are matched with `difflib`, so an unchanged line inside the edited region
keeps them too); a new line is encoded with the file's encoding and ends with
the file's dominant line ending. It refuses (`EditRefused`, with a message for
the user) rather than write a character the encoding cannot hold, a U+FFFD that
stands for bytes that did not decode, or a different coding cookie.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

_BREAK = re.compile(rb"\r\n|\r|\n")
_ASCII_PROBE = "\r\n\t #=:'\"()azAZ09_"


class EditRefused(Exception):
    """The change cannot be written without damaging the file; the message says why."""


def _detect(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # a bad cookie or undecodable first lines: Python's reader would fail
        return "utf-8"
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return "utf-8"


@dataclass(frozen=True, slots=True)
class RawSource:
    """A file's bytes split into lines: contents and endings, and the text each decodes to."""

    detected: str  # the codec Python would read the file with ("utf-8-sig" with a BOM)
    encoding: str  # the codec new lines are written with
    bom: bytes
    contents: tuple[bytes, ...]  # every line without its ending; one more than `endings`
    endings: tuple[bytes, ...]
    texts: tuple[str, ...]  # each content decoded (undecodable bytes as U+FFFD)
    lossy: bool  # some bytes did not decode

    @property
    def text(self) -> str:
        """The normalised text, as `decode_source` gives it for the same bytes."""
        return "\n".join(self.texts)

    def eol(self) -> bytes:
        """The most frequent line ending (the first seen on a tie; LF in a one-line file)."""
        if not self.endings:
            return b"\n"
        return Counter(self.endings).most_common(1)[0][0]


def read_raw(data: bytes) -> RawSource:
    """Split ``data`` the way the editor and the engine count lines (CRLF, CR, LF)."""
    detected = _detect(data)
    encoding, bom = detected, b""
    if detected == "utf-8-sig":
        encoding = "utf-8"
        if data.startswith(codecs.BOM_UTF8):
            bom, data = codecs.BOM_UTF8, data[len(codecs.BOM_UTF8) :]
    try:
        ascii_compatible = _ASCII_PROBE.encode(encoding) == _ASCII_PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    if not ascii_compatible:
        raise EditRefused(f"files encoded as {encoding} cannot be edited in place")
    contents: list[bytes] = []
    endings: list[bytes] = []
    pos = 0
    for match in _BREAK.finditer(data):
        contents.append(data[pos : match.start()])
        endings.append(match.group())
        pos = match.end()
    contents.append(data[pos:])
    texts: list[str] = []
    lossy = False
    for content in contents:
        try:
            texts.append(content.decode(encoding))
        except UnicodeDecodeError:
            lossy = True
            texts.append(content.decode(encoding, errors="replace"))
    return RawSource(detected, encoding, bom, tuple(contents), tuple(endings), tuple(texts), lossy)


def _matches(old: list[str], new: list[str]) -> dict[int, int]:
    """For each line of ``new`` equal to a line of ``old`` (in order), its index in ``old``."""
    n, m = len(old), len(new)
    prefix = 0
    while prefix < min(n, m) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(n, m) - prefix and old[n - 1 - suffix] == new[m - 1 - suffix]:
        suffix += 1
    found = {i: i for i in range(prefix)}
    found.update({m - 1 - k: n - 1 - k for k in range(suffix)})
    middle = SequenceMatcher(None, old[prefix : n - suffix], new[prefix : m - suffix], False)
    for tag, i1, i2, j1, _ in middle.get_opcodes():
        if tag == "equal":
            found.update({prefix + j1 + d: prefix + i1 + d for d in range(i2 - i1)})
    return found


def _encode(raw: RawSource, line: str) -> bytes:
    if "\ufffd" in line and raw.lossy:
        raise EditRefused(
            f"the change touches text with bytes that are not valid {raw.encoding} "
            "(shown as \ufffd); edit those lines by hand"
        )
    try:
        return line.encode(raw.encoding)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise EditRefused(f"the change adds {bad!r}, which {raw.encoding} cannot encode") from None


def apply_text_change(raw: RawSource, old_text: str, new_text: str) -> bytes:
    """The bytes of ``raw`` with ``old_text`` (its normalised text) changed into ``new_text``.

    Raises `EditRefused` when ``old_text`` is not what ``raw`` decodes to (the
    file changed) or when the change cannot be written faithfully.
    """
    if raw.text != old_text:
        raise EditRefused("the file changed while the fix was computed")
    old, new = list(raw.texts), new_text.split("\n")
    kept = _matches(old, new)
    eol = raw.eol()
    out = [raw.bom]
    last = len(new) - 1
    for j, line in enumerate(new):
        i = kept.get(j)
        out.append(raw.contents[i] if i is not None else _encode(raw, line))
        if j < last:
            out.append(raw.endings[i] if i is not None and i < len(raw.endings) else eol)
    data = b"".join(out)
    if _detect(data) != raw.detected:
        raise EditRefused("the change would alter the file's encoding (its coding cookie)")
    return data

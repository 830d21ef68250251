"""The documents say what the code does (issue 32, item 4): docs/format.md's byte offsets
are those of the header the code writes, and every repository path that README.md,
docs/*.md and weights/README.md cite exists (or, for a retired tool, the commit that the
doc says to `git show` it from holds it)."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from apcodec_cli.format import live
from apcodec_cli.format.header import MAGIC, VERSION, VERSION_CODED, VERSION_LEVELS, Header

ROOT = Path(__file__).resolve().parent.parent
FORMAT = (ROOT / "docs" / "format.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "weights" / "README.md", ROOT / "scripts" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
#: Where the repository's files live: a path is a citation when it starts with one of these.
TOP = ("apcodec_cli", "docs", "tests", "scripts", "weights", "samples", ".ci")
#: The files the weights were in before releases (replaced at every change until release 1,
#: 2026-12-06): the lab notebook's commands name them, and the README says how to fetch them
#: from git history. Both say so where they name them.
_BEFORE = {"weights/apcodec.pt", "weights/apcodec-s.pt"}
HISTORICAL = {"docs/training.md": _BEFORE, "README.md": _BEFORE, "weights/README.md": _BEFORE}


def _header(version: int) -> Header:
    name = "model-Name 7"
    return Header(sample_rate=48001, samples_per_frame=321, n_codebooks=5, bits_per_code=11,
                  chunk_frames=151, channels=3, source_sample_rate=44101,
                  source_length=123457, coded_length=234568,
                  fingerprint=bytes(range(1, 9)), model_name=name, streamable=True,
                  version=version, level_frames=151 if version == VERSION_LEVELS else 0,
                  network_fingerprint=bytes(range(11, 19)) if version != VERSION else None)


def _rows() -> list[tuple[str, str, str]]:
    """(offset, size, field) of the header table in format.md."""
    section = FORMAT.split("## Header", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| (.+?) \|$", section, flags=re.M)
    return [r for r in rows if r[0] not in ("offset", "---")]


def _expected(field: str, h: Header, data: bytes, offset: int) -> bytes:
    """The bytes the table's field text describes, from the header's own values."""
    name = h.model_name.encode()
    pairs = [("magic", MAGIC), ("format version", bytes([h.version])),
             ("flags", bytes([1])), ("header length", struct.pack("<H", h.header_size)),
             ("codec sample rate", struct.pack("<I", h.sample_rate)),
             ("samples per code frame", struct.pack("<H", h.samples_per_frame)),
             ("codebooks K", bytes([h.n_codebooks])), ("bits per code", bytes([h.bits_per_code])),
             ("chunk_frames", struct.pack("<H", h.chunk_frames)),
             ("channels C", struct.pack("<H", h.channels)),
             ("source sample rate", struct.pack("<I", h.source_sample_rate)),
             ("source length", struct.pack("<Q", h.source_length)),
             ("coded length", struct.pack("<Q", h.coded_length)),
             ("weights fingerprint", h.fingerprint),
             ("network fingerprint", h.network_fingerprint or b""),
             ("level_frames", struct.pack("<H", h.level_frames)),
             ("model name length", bytes([len(name)])), ("model name,", name),
             ("CRC-32", struct.pack("<I", zlib.crc32(data[:offset])))]
    found = [value for key, value in pairs if field.startswith(key) or f": {key}" in field
             or field.lower().startswith(key.lower())]
    assert len(found) == 1, f"format.md field {field!r} matches {len(found)} known fields"
    return found[0]


@pytest.mark.parametrize("version", [VERSION, VERSION_CODED, VERSION_LEVELS])
def test_format_md_header_offsets_are_the_codes(version: int) -> None:
    h = _header(version)
    data = h.to_bytes()
    n = len(h.model_name)
    position = 0
    for offset_text, size_text, field in _rows():
        if field.startswith("versions 2 and 3") and version == VERSION or \
                field.startswith("version 3 only") and version != VERSION_LEVELS:
            continue
        choices = [c.strip() for c in re.split(r", | or ", offset_text)]  # one per version
        offset = eval(choices[min(version, len(choices)) - 1], {"n": n})  # e.g. 49+n
        size = eval(size_text, {"n": n})
        assert offset == position, f"{field!r}: format.md says offset {offset}, it is {position}"
        assert data[offset:offset + size] == _expected(field, h, data, offset), field
        position += size
    assert position == len(data) == h.header_size
    base = {VERSION: 53, VERSION_CODED: 61, VERSION_LEVELS: 63}[version]
    assert f"{base} + n" in FORMAT.split("## Header", 1)[1][:300]
    assert len(data) == base + n


def test_format_md_live_records_are_the_codes() -> None:
    section = FORMAT.split("A **live stream**", 1)[1].split("## Version 2 and 3 payload", 1)[0]
    assert f"those {live._END.size} bytes" in section  # the lengths record before its CRC
    assert "u16 f" in section and live._COUNT.size == 2 and live._U32.size == 4
    assert "ends right after the end record" not in section


def _cited(text: str) -> set[str]:
    """Repository paths in a markdown text: link targets, and words that start with a
    top-level folder (placeholders such as `<network>` or `*` are not paths)."""
    paths = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:|#", target):
            paths.add(target.split("#")[0])
    for word in re.findall(r"[\w./~-]+[^\s`'\"(),;|]*", text):
        word = word.split("::")[0].split("#")[0].rstrip(".,:;")  # a test id, an anchor
        if word.startswith(tuple(f"{t}/" for t in TOP)) and not re.search(r"[<>*{}$\[\]]", word):
            paths.add(word)
    return paths


def _in_history(text: str) -> dict[str, str]:
    """Paths that a text says to fetch from git history (`git show <commit>:<path>`: a
    retired tool), and that commit."""
    return {path: rev for rev, path in re.findall(r"git show ([0-9a-f]{7,40}):([\w./-]+)", text)}


def test_every_path_the_docs_cite_exists() -> None:
    missing = []
    for doc in DOCS:
        relative = doc.relative_to(ROOT).as_posix()
        retired = _in_history(doc.read_text())
        for path in sorted(_cited(doc.read_text())):
            if path in HISTORICAL.get(relative, ()):
                continue
            if path in retired:
                if (ROOT / ".git").exists():  # a checkout: the commit holds the file
                    subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e",
                                    f"{retired[path]}:{path}"], check=True)
                continue
            base = ROOT if path.startswith(tuple(f"{t}/" for t in TOP)) else doc.parent
            if not (base / path).exists() and not (doc.parent / path).exists():
                missing.append(f"{relative}: {path}")
    assert not missing, "cited but missing:\n" + "\n".join(missing)

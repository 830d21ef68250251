"""Model releases: which weights are installed, which is the newest, and which one a
`.apc` file needs.

A release adds files and never replaces one. Each file's name says what it holds, so that
finding the model of a file needs no more than a directory listing:

    apcodec-r1-750a8b1b89c5a49f.pt                              network: the full model's
                                                                release 1, network fingerprint
    apcodec-r1-750a8b1b89c5a49f-tables2-13be4731e75a8dce.pt     that network's code tables
                                                                no. 2, and the weights
                                                                fingerprint they make with it
    apcodec-s-r1-7abaa366db3037cf.pt                            the streamable model's release 1

`apcodec` is the full model, `apcodec-s` the streamable one. A network file is a weights
file without code tables (`weights.py`); a tables file holds only tables and the network
they belong to, so refitting the tables adds a small file and every file coded with the
earlier tables keeps decoding. `encode` uses the newest: the highest release number of its
kind, with that network's highest tables number.

Where releases are looked for, in order: the folders of `$APCODEC_WEIGHTS_PATH` (a path
list, like `$PATH`: a user's copies of releases the package no longer ships, or any
weights file, named or not), then the installed `weights/` (a checkout or an editable
install) and `<prefix>/share/apcodec/weights` (a regular `pip install`). A `.apc` header
names what decoding needs (docs/format.md, "The contract"): its network fingerprint, and
for a range-coded file the weights fingerprint of network and tables together; `find`
matches it by file name first, and only then opens the other `*.pt` files of those
folders to fingerprint them.

Imports no torch until a file must be opened (`apcodec info` stays fast).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..errors import ApcodecError

if TYPE_CHECKING:
    from ..format.header import Header

#: The environment variable with the user's folders of weights (os.pathsep-separated).
PATH_ENV = "APCODEC_WEIGHTS_PATH"
#: The kinds of model, by the start of their file names: streamable or not.
KINDS = {"apcodec": False, "apcodec-s": True}
_HEX = r"[0-9a-f]{16}"
_NETWORK = re.compile(rf"(?P<kind>apcodec(?:-s)?)-r(?P<number>[1-9]\d*)-(?P<network>{_HEX})")
_NETWORK_FILE = re.compile(_NETWORK.pattern + r"\.pt")
_TABLES_FILE = re.compile(
    _NETWORK.pattern + rf"-tables(?P<tables>[1-9]\d*)-(?P<weights>{_HEX})\.pt")


class NotInstalledError(ApcodecError):
    """No installed weights can decode a file, or no release of a kind is installed."""


@dataclasses.dataclass(frozen=True)
class Retired:
    """A release that has left the package (the wheel stays under 60 MB: README, "What the
    package keeps"), and the commit of the apcodec repository that still holds its files.

    Attributes:
        name: The release, e.g. "apcodec-r1".
        files: Its files in weights/ at `commit`, network first.
        fingerprints: The weights fingerprints its files were written with (the network's
            and those it makes with each of its tables; older files name one of them).
        commit: A commit that holds the files (`git show COMMIT:weights/FILE`).
        left: The date it left.
    """

    name: str
    files: tuple[str, ...]
    fingerprints: frozenset[bytes]
    commit: str
    left: str

    def names(self, header: "Header") -> bool:
        """Whether a file with this header was written by this release."""
        return header.fingerprint in self.fingerprints or (
            header.network_fingerprint is not None
            and header.network_fingerprint in self.fingerprints)

    def how_to_get(self) -> str:
        """Where its files are, in a sentence."""
        return (f"{self.name} left the package on {self.left}; its files are in the apcodec "
                f"repository at commit {self.commit} (git show {self.commit}:weights/FILE for "
                f"{', '.join(self.files)}; weights/README.md, \"Releases no longer in the "
                f"package\")")


#: Every release that has left the package, oldest first (weights/README.md lists them too).
RETIRED: tuple[Retired, ...] = (
    Retired("apcodec-r1",
            ("apcodec-r1-750a8b1b89c5a49f.pt",
             "apcodec-r1-750a8b1b89c5a49f-tables1-00d660394d36824d.pt",
             "apcodec-r1-750a8b1b89c5a49f-tables2-13be4731e75a8dce.pt"),
            frozenset(bytes.fromhex(f) for f in ("750a8b1b89c5a49f", "00d660394d36824d",
                                                  "13be4731e75a8dce")),
            "e57bcf6", "2026-12-07"),
    Retired("apcodec-s-r1",
            ("apcodec-s-r1-7abaa366db3037cf.pt",
             "apcodec-s-r1-7abaa366db3037cf-tables1-a54eb7abf3f2267a.pt",
             "apcodec-s-r1-7abaa366db3037cf-tables2-3b8be61b961222e5.pt"),
            frozenset(bytes.fromhex(f) for f in ("7abaa366db3037cf", "a54eb7abf3f2267a",
                                                  "3b8be61b961222e5")),
            "38f044b", "2026-12-07"),
    Retired("apcodec-r2",
            ("apcodec-r2-b4607f97d1d64462.pt",
             "apcodec-r2-b4607f97d1d64462-tables1-1f5b84105cbfc51c.pt"),
            frozenset(bytes.fromhex(f) for f in ("b4607f97d1d64462", "1f5b84105cbfc51c")),
            "49fcb8b", "2026-12-07"),
)


def retired(header: "Header") -> Retired | None:
    """The retired release that wrote a file with this header, if one did."""
    return next((r for r in RETIRED if r.names(header)), None)


def kind_name(streamable: bool) -> str:
    """The file-name prefix of a kind of model."""
    return "apcodec-s" if streamable else "apcodec"


@dataclasses.dataclass(frozen=True)
class Tables:
    """A code-tables file of a release: its number among its network's tables (1, 2, ...)
    and the weights fingerprint that the network and these tables make."""

    path: Path
    number: int
    weights_fingerprint: bytes

    @property
    def stem(self) -> str:
        """The file's name without `.pt`: the name of its golden `.apc` file."""
        return self.path.name[:-3]


@dataclasses.dataclass(frozen=True)
class Release:
    """A released network and its code tables (oldest first), as their names say."""

    kind: str
    number: int
    network_fingerprint: bytes
    path: Path
    tables: tuple[Tables, ...] = ()

    @property
    def streamable(self) -> bool:
        return KINDS[self.kind]

    @property
    def name(self) -> str:
        """e.g. `apcodec-r1`."""
        return f"{self.kind}-r{self.number}"

    @property
    def stem(self) -> str:
        """The network file's name without `.pt`: the name of the release's golden pair."""
        return self.path.name[:-3]

    @property
    def newest_tables(self) -> Tables | None:
        return self.tables[-1] if self.tables else None


@dataclasses.dataclass(frozen=True)
class Match:
    """What decodes a file: a weights file, and the tables file to load with it (None: the
    tables in the weights file, if any); `release` when it is a named release."""

    path: Path
    tables: Path | None = None
    release: Release | None = None

    def describe(self) -> str:
        if self.release is None:
            return str(self.path)
        tables = [t for t in self.release.tables if t.path == self.tables]
        return self.release.name + (f" with tables {tables[0].number}" if tables else "")


def installed_folders() -> list[Path]:
    """The package's own weights folders: `weights/` beside the package (a checkout or an
    editable install), then the data folder that a regular `pip install` fills."""
    return [Path(__file__).resolve().parents[2] / "weights",
            Path(sys.prefix) / "share" / "apcodec" / "weights"]


def user_folders() -> list[Path]:
    """The folders of `$APCODEC_WEIGHTS_PATH`, in order."""
    return [Path(p).expanduser() for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]


def folders() -> list[Path]:
    """Every folder searched, in order: the user's, then the installed ones."""
    seen, out = set(), []
    for folder in user_folders() + installed_folders():
        key = os.path.normcase(os.path.abspath(folder))
        if key not in seen:
            seen.add(key)
            out.append(folder)
    return out


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:  # missing or unreadable: nothing there
        return []


def scan(where: Iterable[Path] | None = None) -> list[Release]:
    """The releases in `where` (default: `folders()`), by their file names; a network in
    several folders counts once, from the first. Tables files without their network are
    left out (they cannot decode anything alone)."""
    networks: dict[tuple[str, bytes], Release] = {}
    tables: dict[tuple[str, bytes], dict[bytes, Tables]] = {}
    for folder in folders() if where is None else map(Path, where):
        for name in _names(folder):
            if m := _NETWORK_FILE.fullmatch(name):
                key = (m["kind"], bytes.fromhex(m["network"]))
                networks.setdefault(key, Release(m["kind"], int(m["number"]), key[1],
                                                 folder / name))
            elif m := _TABLES_FILE.fullmatch(name):
                found = Tables(folder / name, int(m["tables"]), bytes.fromhex(m["weights"]))
                tables.setdefault((m["kind"], bytes.fromhex(m["network"])), {}).setdefault(
                    found.weights_fingerprint, found)
    return sorted((dataclasses.replace(r, tables=tuple(sorted(
        tables.get(key, {}).values(), key=lambda t: t.number))) for key, r in networks.items()),
        key=lambda r: (r.kind, r.number))


def newest(streamable: bool, where: Iterable[Path] | None = None) -> Release:
    """The newest release of a kind: the highest number (the first folder's on a tie).

    Raises:
        NotInstalledError: None is installed, saying where it looked.
    """
    kind = kind_name(streamable)
    found = [r for r in scan(where) if r.kind == kind]
    if not found:
        looked = ", ".join(str(f) for f in (folders() if where is None else where))
        what = "streamable " if streamable else ""
        raise NotInstalledError(f"no {what}weights are installed (looked for {kind}-r*.pt in "
                                f"{looked}); pass --weights FILE or set {PATH_ENV}")
    return max(found, key=lambda r: r.number)  # max keeps the first of equals


def network_of(weights_fingerprint: bytes, where: Iterable[Path] | None = None
               ) -> bytes | None:
    """The network fingerprint of released weights (network with tables) with this
    weights fingerprint, or None when no release has it."""
    for release in scan(where):
        if any(t.weights_fingerprint == weights_fingerprint for t in release.tables):
            return release.network_fingerprint
    return None


def find_named(header: Header, where: Iterable[Path] | None = None) -> Match | None:
    """The release that decodes a file with this header, by file names alone."""
    for release in scan(where):
        if release.streamable != header.streamable:
            continue
        if header.coded:  # range-coded: that network with those tables, nothing else
            if header.network_fingerprint != release.network_fingerprint:
                continue
            if not header.needs_tables:  # written without tables: the network alone
                return Match(release.path, None, release)
            for tables in release.tables:
                if tables.weights_fingerprint == header.fingerprint:
                    return Match(release.path, tables.path, release)
            continue
        # Bit-packed (version 1): the network is all it needs. The header holds the network
        # fingerprint, or, in files and live streams written before release 1, the
        # fingerprint of the network and the tables of the time: that pair names it.
        if header.fingerprint == release.network_fingerprint:
            return Match(release.path, None, release)
        for tables in release.tables:
            if tables.weights_fingerprint == header.fingerprint:
                return Match(release.path, tables.path, release)
    return None


def is_release_file(path: Path) -> bool:
    """Whether `path` is named as a release's network or tables file: one that is never
    rewritten (a refit of its tables is written elsewhere and added as a new file)."""
    return bool(_NETWORK_FILE.fullmatch(path.name) or _TABLES_FILE.fullmatch(path.name))


def named_network(path: Path) -> bytes | None:
    """The network fingerprint a release's network file names (`apcodec-r1-<hex>.pt`), or
    None for a file not named as one."""
    m = _NETWORK_FILE.fullmatch(path.name)
    return None if m is None else bytes.fromhex(m["network"])


def newest_tables_of(path: Path) -> Path | None:
    """The newest tables file of a release's network file `path` (by its name: in its own
    folder or any searched one); None for other files, or a network without tables."""
    m = _NETWORK_FILE.fullmatch(path.name)
    if m is None:
        return None
    network = bytes.fromhex(m["network"])
    for release in scan([path.parent, *folders()]):
        if (release.kind, release.network_fingerprint) == (m["kind"], network) and release.tables:
            return release.tables[-1].path
    return None


def other_files(where: Iterable[Path] | None = None) -> list[Path]:
    """The `*.pt` files of the searched folders whose names are not release names (a
    user's copies of weights from before releases, say): found only by opening them."""
    out = []
    for folder in folders() if where is None else map(Path, where):
        out += [folder / n for n in _names(folder) if n.endswith(".pt")
                and not _NETWORK_FILE.fullmatch(n) and not _TABLES_FILE.fullmatch(n)]
    return out


def find(header: Header, where: Iterable[Path] | None = None) -> Match | None:
    """What decodes a file with this header: a release by its name, else any other
    weights file of the searched folders whose fingerprints match (each opened, torch
    loaded: only when no name matched). None when nothing matches."""
    named = find_named(header, where)
    if named is not None:
        return named
    from .weights import WeightsError, fingerprints  # torch: only for unnamed files

    for path in other_files(where):
        try:
            network, combined, streamable = fingerprints(path)
        except WeightsError:
            continue  # not weights, or damaged: not the ones
        if streamable != header.streamable:
            continue
        if header.coded:
            if (header.network_fingerprint, header.fingerprint) == (network, combined):
                return Match(path)
        elif header.fingerprint in (network, combined):
            return Match(path)
    return None


def require(header: Header, where: Iterable[Path] | None = None) -> Match:
    """`find`, or NotInstalledError saying what the file needs and where to put it."""
    match = find(header, where)
    if match is not None:
        return match
    needs = (f"network {header.network_fingerprint.hex()} with the code tables of weights "
             f"{header.fingerprint.hex()}" if header.needs_tables else
             f"network {header.network_fingerprint.hex()}" if header.coded else
             f"weights {header.fingerprint.hex()}")
    kind = "streamable model" if header.streamable else "model"
    gone = retired(header)
    where = (f"release {gone.how_to_get()}; put them" if gone else
             "put that release's files (or the weights file that made it)")
    raise NotInstalledError(
        f"no installed weights decode this file: it needs the {kind} {header.model_name!r}, "
        f"{needs}; {where} in a folder of ${PATH_ENV} (README: old releases), or pass "
        f"--weights")


# ---- adding a release ---------------------------------------------------------------------


def add(weights_file: str | os.PathLike, folder: str | os.PathLike) -> list[Path]:
    """Add the weights in `weights_file` (a network, with or without code tables) to the
    releases in `folder`, never replacing a file.

    A network not yet released becomes the next release of its kind (`<kind>-r<N>-<network
    fingerprint>.pt`, without tables); tables not yet there become its next tables file
    (`...-tables<K>-<weights fingerprint>.pt`). Tensors are stored as they are in
    `weights_file`, so the fingerprints stay the same.

    Returns:
        The files written (none when all was there already).
    """
    from . import weights  # torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = weights.read_payload(Path(weights_file))
    network = weights.fingerprint(payload["state_dict"])
    kind = kind_name(bool(payload["config"].get("causal", False)))
    tables = weights.payload_tables(payload, Path(weights_file))
    known = [r for r in scan([folder]) if r.kind == kind]
    written = []
    release = next((r for r in known if r.network_fingerprint == network), None)
    if release is None:
        number = 1 + max((r.number for r in known), default=0)
        path = folder / f"{kind}-r{number}-{network.hex()}.pt"
        weights.write_payload(path, {k: v for k, v in payload.items() if k != "code_tables"})
        written.append(path)
        release = Release(kind, number, network, path)
    if tables is not None:
        combined = tables.weights_fingerprint(network)
        if all(t.weights_fingerprint != combined for t in release.tables):
            number = 1 + max((t.number for t in release.tables), default=0)
            path = folder / f"{release.stem}-tables{number}-{combined.hex()}.pt"
            weights.save_tables(path, tables, network,
                                payload.get("code_tables", {}).get("info", {}))
            written.append(path)
    return written

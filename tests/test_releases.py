"""Every file stays decodable (issue 32): releases add files and never replace one, each
release has a golden pair that the default install decodes to its reference, and the files
of a release still decode, without --weights, once later releases are added.

The golden pairs (`tests/data/releases/`, written by `scripts/add_release.py`): for each
released network, `<network file stem>.flac`, the 16-bit decode of 2 s of
samples/speech.flac made when it was released; for each of its tables files,
`<tables file stem>.apc`, those 2 s coded with them; for a streamable network,
`<stem>.live.apc`, a live stream (`encode -s - -`) of the same 2 s; the live streams
of the two tables of `apcodec-s-r1` written by the encoder before release 1, whose header
named the tables too (`...-tablesK-<weights>.live.apc`); and for the tables files of
releases made before format version 3 (level gains), `<tables file stem>.v3.apc`, the
2 s as the encoder writes them since, with its own reference `<tables file stem>.v3.flac`.

Tolerance: decoded here in float32 on one thread, every golden file gave its reference
bit for bit (0 samples differ). With two threads the streamable model's decode differed
by 1 LSB in 10-11 of the 96 000 samples (the order of float32 sums), so the test allows
what another machine's arithmetic may change: at most 4 LSB (-78 dBFS) on at most 1 % of
the samples. Anything larger means a changed decoder, not rounding.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.codec import Codec
from apcodec_cli.models import releases, weights
from apcodec_cli.format.bitstream import peek_header
from apcodec_cli.train.codetables import TableCounts

from helpers import make_weights, tone, write_audio

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
GOLDEN = ROOT / "tests" / "data" / "releases"
RELEASES = releases.scan([WEIGHTS])
GOLDEN_FILES = sorted(GOLDEN.glob("*.apc"))
MAX_LSB, MAX_SHARE = 4, 0.01
#: Release files that have left the package, and the commit that still holds each.
RETIRED = {name: r.commit for r in releases.RETIRED for name in r.files}
CARD = (WEIGHTS / "README.md").read_text()


@pytest.fixture
def default_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --weights, no environment: only what the package installs."""
    for name in (weights.ENV_VAR, weights.STREAM_ENV_VAR, releases.PATH_ENV):
        monkeypatch.delenv(name, raising=False)


def _stem(golden: Path) -> str:
    """The network file stem of a golden `.apc` file's release."""
    return golden.name.split("-tables")[0].removesuffix(".apc").removesuffix(".live")


def _reference(golden: Path) -> Path:
    """The reference decode of a golden `.apc` file: its own for a `.v3.apc`, else its
    release's."""
    if golden.name.endswith(".v3.apc"):
        return golden.with_suffix(".flac")
    return GOLDEN / f"{_stem(golden)}.flac"


def _retired(stem: str, folder: Path) -> None:
    """Put the files of retired release `stem` in `folder`, from the commits that hold
    them; skips where there is no git history (an unpacked source archive)."""
    files = [name for name in RETIRED if name.startswith(f"{stem}.") or
             name.startswith(f"{stem}-tables")]
    assert files, f"{stem} is neither in weights/ nor among the retired releases"
    if not (ROOT / ".git").exists():
        pytest.skip(f"{stem} has left the package and there is no git history to fetch it")
    folder.mkdir(exist_ok=True)
    for name in files:
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{RETIRED[name]}:weights/{name}"],
                              check=True, capture_output=True).stdout
        (folder / name).write_bytes(blob)


def test_every_release_has_its_golden_pair() -> None:
    assert {r.streamable for r in RELEASES} == {False, True}  # both kinds are installed
    installed = {r.stem for r in RELEASES}
    for reference in GOLDEN.glob("*.flac"):  # a release gone from weights/ is retired
        stem = reference.name.split("-tables")[0].removesuffix(".flac")
        if stem not in installed:
            assert any(name.startswith(stem) for name in RETIRED), reference.name
    for name in RETIRED:
        assert not (WEIGHTS / name).exists(), f"{name} is both retired and installed"
        # The model card tells users where it is (and the doc test checks the commit has it).
        section = CARD.split("## Releases no longer in the package")[1].split("\n## ")[0]
        assert f"git show {RETIRED[name]}:weights/{name}" in section, name


@pytest.mark.weights
def test_a_retired_release_s_files_say_where_its_weights_are(cli, default_install) -> None:
    """decode and info name the release that wrote a file and the commit that holds its
    files, when that release has left the package."""
    for gone in releases.RETIRED:
        golden = next(GOLDEN.glob(f"{gone.files[0][:-3]}*.apc"))
        with open(golden, "rb") as f:
            assert releases.retired(peek_header(f)) == gone
        result = cli("decode", "-q", golden, "-")
        assert result.exit_code != 0
        assert gone.name in result.output and f"commit {gone.commit}" in result.output
        assert releases.PATH_ENV in result.output
        info = cli("info", golden)
        assert f"release {gone.name} left the package" in info.output
    with open(GOLDEN_FILES[-1], "rb") as f:
        assert releases.retired(peek_header(f)) is None
    for release in RELEASES:
        assert (GOLDEN / f"{release.stem}.flac").is_file(), \
            f"{release.name}: no reference decode; run scripts/add_release.py"
        assert release.tables, f"{release.name} has no code tables"
        for tables in release.tables:
            assert (GOLDEN / f"{tables.stem}.apc").is_file(), \
                f"{tables.path.name}: no golden file; run scripts/add_release.py"
            with open(GOLDEN / f"{tables.stem}.apc", "rb") as f:
                levels = peek_header(f).has_levels
            assert levels or (GOLDEN / f"{tables.stem}.v3.apc").is_file(), \
                f"{tables.path.name}: no golden file of format 3; run scripts/add_release.py"
        if release.streamable:
            assert (GOLDEN / f"{release.stem}.live.apc").is_file()


def test_golden_headers_name_what_they_need() -> None:
    """A range-coded file names network and tables; a live stream the network alone, or,
    written before release 1, the network with the tables of the time."""
    for golden in GOLDEN_FILES:
        with open(golden, "rb") as f:
            header = peek_header(f)
        stem = _stem(golden)
        network = bytes.fromhex(stem[-16:])
        name = golden.name.replace(".v3.apc", ".apc")
        assert header.has_levels == golden.name.endswith(".v3.apc"), golden.name
        if header.coded:
            assert header.network_fingerprint == network
            assert header.fingerprint.hex() == name[-20:-4], golden.name
        elif "-tables" in golden.name:
            assert header.live and header.fingerprint.hex() == golden.name[-25:-9], golden.name
        else:
            assert header.live and header.fingerprint == network, golden.name
    live_before = [g for g in GOLDEN_FILES if "-tables" in g.name and g.name.endswith(".live.apc")]
    assert len(live_before) == 2, live_before


def _compare(decoded: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert decoded.shape == reference.shape, what
    diff = np.abs(decoded.astype(np.int64) - reference)
    assert diff.max() <= MAX_LSB and np.mean(diff > 0) <= MAX_SHARE, \
        f"{what}: {int(np.sum(diff > 0))} samples differ, by up to {int(diff.max())} LSB"


@pytest.mark.weights
@pytest.mark.parametrize("golden", GOLDEN_FILES, ids=[g.name for g in GOLDEN_FILES])
def test_golden_files_decode_with_the_default_install(cli, one_thread, default_install,
                                                      golden: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With the package's releases; a retired release's files decode as the README tells
    users to do it: its files from git history in a folder of $APCODEC_WEIGHTS_PATH."""
    stem = _stem(golden)
    if not (WEIGHTS / f"{stem}.pt").is_file():
        _retired(stem, tmp_path / "old")
        monkeypatch.setenv(releases.PATH_ENV, str(tmp_path / "old"))
    result = cli("decode", "-q", golden, tmp_path / "out.wav")
    assert result.exit_code == 0, result.output
    decoded, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    reference = sf.read(_reference(golden), dtype="int16")[0]
    assert rate == 48000
    _compare(decoded, reference, golden.name)


@pytest.mark.weights
def test_encode_uses_the_newest_release(cli, one_thread, default_install, tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 0.5)
    for flag, streamable in (("", False), ("-s", True)):
        newest = releases.newest(streamable, [WEIGHTS])
        out = tmp_path / f"out{flag}.apc"
        assert cli("encode", "-q", *[flag] * bool(flag), tmp_path / "in.wav", out).exit_code == 0
        with open(out, "rb") as f:
            header = peek_header(f)
        assert header.network_fingerprint == newest.network_fingerprint
        assert header.fingerprint == newest.newest_tables.weights_fingerprint
    live = cli("encode", "-q", "-s", "-", "-", input=(tmp_path / "in.wav").read_bytes())
    header = peek_header(io.BytesIO(live.stdout_bytes))
    newest = releases.newest(True, [WEIGHTS])
    assert header.live and header.fingerprint == newest.network_fingerprint


@pytest.mark.weights
def test_todays_files_decode_unchanged_once_a_next_release_is_there(
        cli, one_thread, default_install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (tiny) next release of both kinds in the user's folder becomes what encode uses;
    the files of the oldest releases in the package still decode to their reference."""
    user = tmp_path / "user"
    following = {False: releases.newest(False).number + 1,
                 True: releases.newest(True).number + 1}
    for preset, seed, streamable in (("tiny", 0, False), ("tiny-s", 1, True)):
        made = make_weights(tmp_path / f"{preset}.pt", seed=seed, preset=preset)
        added = releases.add(_with_tables(made, tmp_path / f"{preset}t.pt", 0), user)
        for path in added:  # numbered as the next release of its kind would be
            path.rename(path.with_name(path.name.replace("-r1-", f"-r{following[streamable]}-")))
    monkeypatch.setenv(releases.PATH_ENV, str(user))
    for streamable in (False, True):
        assert releases.newest(streamable).number == following[streamable]
        assert releases.newest(streamable).path.parent == user
    oldest = [min((r for r in RELEASES if r.streamable == streamable), key=lambda r: r.number)
              for streamable in (False, True)]
    for golden in (GOLDEN / f"{oldest[0].tables[-1].stem}.apc",
                   GOLDEN / f"{oldest[0].tables[-1].stem}.v3.apc",
                   GOLDEN / f"{oldest[1].stem}.live.apc"):
        result = cli("decode", "-q", "-f", golden, tmp_path / "out.wav")
        assert result.exit_code == 0, result.output
        reference = sf.read(_reference(golden), dtype="int16")[0]
        _compare(sf.read(tmp_path / "out.wav", dtype="int16")[0], reference, golden.name)


def test_the_package_installs_every_release_file() -> None:
    """setup.cfg's data files take every weights file: a release is one file more."""
    text = (ROOT / "setup.cfg").read_text()
    assert "share/apcodec/weights = weights/*.pt" in text
    assert not (WEIGHTS / "apcodec.pt").exists() and not (WEIGHTS / "apcodec-s.pt").exists()


# ---- the next release, played through with tiny models ------------------------------------


def _with_tables(source: Path, out: Path, seed: int) -> Path:
    codec = Codec.load(source, device="cpu")
    counts = TableCounts(codec.config.n_codebooks, 1 << codec.config.bits_per_code)
    counts.add(codec.encode(tone(3.0, seed=seed)))
    weights.store_code_tables(source, counts.fit(n_buckets=2 + seed, iterations=2), out,
                              data=f"tones {seed}")
    return out


@pytest.fixture
def tiny_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install whose weights folder starts empty (the shipped releases left out)."""
    folder = tmp_path / "installed"
    folder.mkdir()
    monkeypatch.setattr(releases, "installed_folders", lambda: [folder])
    for name in (weights.ENV_VAR, weights.STREAM_ENV_VAR, releases.PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    return folder


def _decode(cli, apc: Path, out: Path) -> np.ndarray:
    result = cli("decode", "-q", "-f", apc, out)
    assert result.exit_code == 0, result.output
    return sf.read(out, dtype="int16")[0]


def test_files_of_a_release_decode_after_the_next_is_added(cli, one_thread, tiny_install: Path,
                                                           tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    write_audio(work / "in.wav", 1.0)
    r1 = _with_tables(make_weights(work / "r1.pt", seed=0), work / "r1t.pt", seed=0)
    s1 = _with_tables(make_weights(work / "s1.pt", seed=0, preset="tiny-s"), work / "s1t.pt", 0)
    added = releases.add(r1, tiny_install) + releases.add(s1, tiny_install)
    assert [re.sub("[0-9a-f]{16}", "X", p.name) for p in added] == [
        "apcodec-r1-X.pt", "apcodec-r1-X-tables1-X.pt", "apcodec-s-r1-X.pt",
        "apcodec-s-r1-X-tables1-X.pt"]
    before = set(tiny_install.iterdir())

    # Files of release 1: range-coded, bit-packed live stream.
    assert cli("encode", "-q", work / "in.wav", work / "a.apc").exit_code == 0
    live = cli("encode", "-q", "-s", "-", "-", input=(work / "in.wav").read_bytes())
    (work / "live.apc").write_bytes(live.stdout_bytes)
    first = {name: _decode(cli, work / f"{name}.apc", work / f"{name}1.wav")
             for name in ("a", "live")}

    # Release 1's tables refitted, then release 2 of both kinds.
    assert len(releases.add(_with_tables(work / "r1.pt", work / "r1u.pt", seed=1),
                            tiny_install)) == 1
    r2 = _with_tables(make_weights(work / "r2.pt", seed=1), work / "r2t.pt", seed=0)
    s2 = _with_tables(make_weights(work / "s2.pt", seed=1, preset="tiny-s"), work / "s2t.pt", 0)
    releases.add(r2, tiny_install)
    releases.add(s2, tiny_install)
    assert releases.add(r2, tiny_install) == []  # nothing twice
    assert before <= set(tiny_install.iterdir())  # nothing replaced or removed
    assert releases.newest(False).name == "apcodec-r2" and releases.newest(True).number == 2

    assert cli("encode", "-q", work / "in.wav", work / "b.apc").exit_code == 0
    with open(work / "b.apc", "rb") as f:
        assert peek_header(f).network_fingerprint == weights.load(r2).network_fingerprint
    for name, audio in first.items():  # release 1's files: the same audio, found by header
        assert np.array_equal(_decode(cli, work / f"{name}.apc", work / f"{name}2.wav"), audio)
    piped = cli("decode", "-q", "-s", "-", "-", input=(work / "live.apc").read_bytes())
    assert piped.exit_code == 0, piped.output
    with open(work / "a.apc", "rb") as f:  # the library's way
        assert Codec.for_header(peek_header(f), device="cpu").matches(peek_header(f))

    # Release 1 leaves the package: a copy in $APCODEC_WEIGHTS_PATH still decodes its files,
    # and so does the weights file that made them, under any name.
    user = tmp_path / "user"
    user.mkdir()
    for path in tiny_install.glob("apcodec-r1-*"):
        shutil.move(path, user / path.name)
    assert cli("decode", "-q", "-f", work / "a.apc", work / "x.wav").exit_code == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(releases.PATH_ENV, str(user))
        assert np.array_equal(_decode(cli, work / "a.apc", work / "a3.wav"), first["a"])
    for path in user.iterdir():
        path.unlink()
    shutil.copy(r1, user / "my old weights.pt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(releases.PATH_ENV, f"{tmp_path / 'nowhere'}:{user}")
        assert np.array_equal(_decode(cli, work / "a.apc", work / "a4.wav"), first["a"])


def test_a_missing_release_is_named_with_where_to_put_it(cli, tiny_install: Path,
                                                         tmp_path: Path) -> None:
    made = _with_tables(make_weights(tmp_path / "w.pt"), tmp_path / "wt.pt", seed=0)
    write_audio(tmp_path / "in.wav", 0.5)
    assert cli("encode", "-q", "-w", made, tmp_path / "in.wav", tmp_path / "a.apc").exit_code == 0
    releases.add(make_weights(tmp_path / "other.pt", seed=3), tiny_install)
    result = cli("decode", "-q", tmp_path / "a.apc", tmp_path / "a.wav")
    assert result.exit_code == 1
    assert "APCODEC_WEIGHTS_PATH" in result.output and "network" in result.output
    info = cli("info", tmp_path / "a.apc")
    assert "not installed" in info.output


def test_models_lists_the_installed_releases(cli, tiny_install: Path, tmp_path: Path) -> None:
    releases.add(_with_tables(make_weights(tmp_path / "w.pt"), tmp_path / "wt.pt", 0),
                 tiny_install)
    result = cli("models")
    assert result.exit_code == 0, result.output
    assert "apcodec-r1" in result.output and "newest" in result.output
    assert str(tiny_install) in result.output
    for gone in releases.RETIRED:  # not installed here: listed with where its files are
        assert f"{gone.how_to_get()}" in result.output

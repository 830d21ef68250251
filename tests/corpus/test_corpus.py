"""Fast tests of the corpus builder and the Opus pack, on synthetic audio (no network, no apt)."""

from __future__ import annotations

import random
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.data import corpus, pack
from apcodec_cli.evaluate.packs import measure_pack_quality
from helpers import disk_fills_while_writing, partials

SR = corpus.SAMPLE_RATE


def _sine(seconds: float, rate: int, freq: float = 1000.0, amp: float = 0.25) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture()
def audio_folder(tmp_path: Path) -> Path:
    """A folder with a 44.1 kHz stereo sine, a silent file, a nested file with a silent middle."""
    root = tmp_path / "user_audio"
    (root / "nested" / "deeper").mkdir(parents=True)
    tone = _sine(3.0, 44100)
    sf.write(root / "sine.wav", np.stack([tone, tone], axis=1), 44100)
    rng = np.random.default_rng(0)
    hiss = (1e-4 * rng.standard_normal(2 * 44100)).astype(np.float32)  # -80 dBFS
    sf.write(root / "silent.flac", hiss, 44100)
    music = np.concatenate([_sine(10, SR, 440), np.zeros(10 * SR, np.float32), _sine(10, SR, 660)])
    music += (0.01 * rng.standard_normal(len(music))).astype(np.float32) * (music != 0)
    sf.write(root / "nested" / "deeper" / "gap.ogg", music, SR, format="OGG", subtype="VORBIS")
    (root / "notes.txt").write_text("not audio")
    return root


def test_list_audio_files_is_recursive_and_skips_other_files(audio_folder: Path) -> None:
    names = [p.relative_to(audio_folder).as_posix() for p in corpus.list_audio_files(audio_folder)]
    assert names == ["nested/deeper/gap.ogg", "silent.flac", "sine.wav"]


def test_decode_resamples_to_48k_mono_with_the_right_length(audio_folder: Path) -> None:
    x, rate = corpus.decode_mono(str(audio_folder / "sine.wav"))
    assert rate == 44100 and x.ndim == 1 and x.dtype == np.float32
    assert len(x) == 3 * SR
    spectrum = np.abs(np.fft.rfft(x[SR: 2 * SR]))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins: the tone stays at 1 kHz
    assert corpus.rms_db(x[SR: 2 * SR]) == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.1)


def test_decode_reads_zip_members_and_mixes_stems(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", _sine(1.0, 22050, 300, 0.8), 22050)
    with zipfile.ZipFile(tmp_path / "music.pk3", "w") as zf:
        zf.write(tmp_path / "a.wav", "music/a.wav")
    member = f"{tmp_path / 'music.pk3'}{corpus.ARCHIVE_SEP}music/a.wav"
    x, rate = corpus.decode_mono(member)
    assert rate == 22050 and len(x) == SR
    stems = corpus.Source("p/a", (member, str(tmp_path / "a.wav")), "p", "music")
    mixed, _ = corpus.decode_source(stems)
    assert np.max(np.abs(mixed)) == pytest.approx(1.0, abs=1e-6)  # 1.6 peak scaled back to 1
    assert corpus.measure_bandwidth(x, rate) <= 11025


def test_silence_is_dropped(audio_folder: Path, tmp_path: Path) -> None:
    sources = {s.key: s for s in corpus.folder_sources(audio_folder, "music")}
    out = tmp_path / "corpus"
    assert corpus.process_source(sources["user_audio/silent.flac"], out)["rows"] == []
    rows = corpus.process_source(sources["user_audio/nested/deeper/gap.ogg"], out)["rows"]
    assert [r["start"] for r in rows] == [0.0, 20.0]  # the silent middle segment is gone
    assert [r["duration"] for r in rows] == [10.0, 10.0]


def test_split_is_deterministic_and_independent_of_order() -> None:
    keys = {f"pkg{i % 3}/file{i:03d}.ogg": f"pkg{i % 3}" for i in range(300)}
    keys.update({f"tiny/f{i}.wav": "tiny" for i in range(3)})
    first = corpus.assign_splits(keys, 0.05)
    items = list(keys.items())
    random.Random(1).shuffle(items)
    assert corpus.assign_splits(dict(items), 0.05) == first
    assert 5 <= sum(v == "validation" for v in first.values()) <= 30
    for package in ("pkg0", "pkg1", "pkg2", "tiny"):  # every package has validation files
        assert any(first[k] == "validation" for k, p in keys.items() if p == package)
    subset = {k: p for k, p in keys.items() if p == "pkg0"}
    assert all(corpus.assign_splits(subset, 0.05)[k] == first[k] for k in subset)


@pytest.fixture()
def built(audio_folder: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    out = tmp_path / "corpus"
    for source in corpus.folder_sources(audio_folder, "speech"):
        assert corpus.process_source(source, out)["status"] == "done"
    sidecars = corpus.load_sidecars(out, corpus.SegmentParams())
    splits = corpus.assign_splits({s["key"]: s["package"] for s in sidecars}, 0.05)
    manifest = corpus.write_manifest(out, [r for s in sidecars for r in s["rows"]], splits)
    return out, corpus.read_manifest(manifest)


def test_manifest_fields_and_segment_files(built: tuple[Path, list[dict]],
                                           audio_folder: Path) -> None:
    out, rows = built
    assert len(rows) == 3  # sine (3 s) + two halves of gap.ogg
    fields = {"path", "source", "package", "category", "split", "start", "duration", "rms_db",
              "source_rate", "bandwidth_hz"}
    for row in rows:
        assert set(row) == fields
        assert row["category"] == "speech" and row["split"] in ("train", "validation")
        info = sf.info(out / row["path"])
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert info.frames == round(row["duration"] * SR)
    sine = next(r for r in rows if r["source"] == "user_audio/sine.wav")
    assert sine["source_rate"] == 44100 and sine["bandwidth_hz"] <= 22050
    assert sine["duration"] == pytest.approx(3.0)
    assert sine["rms_db"] == pytest.approx(-15.05, abs=0.1)
    again = corpus.process_source(corpus.folder_sources(audio_folder, "speech")[-1], out)
    assert again["status"] == "cached"


def test_pack_round_trip(built: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, rows = built
    rows = [{**r, "split": "validation" if r["duration"] < 5 else "train"} for r in rows]
    chosen = (pack.select_segments(rows, {"speech": 1.0})
              + pack.select_segments(rows, {"speech": 1.0}, "validation"))
    assert sorted(r["duration"] for r in chosen) == [3.0, 10.0, 10.0]
    index = pack.write_pack(out, chosen, tmp_path / "pack", kbps=64)
    assert sorted(index["files"]) == ["speech_train_00.opus", "speech_validation_00.opus"]
    assert index["hours"]["speech/train"] * 3600 == pytest.approx(20.0, abs=0.01)
    assert index["hours"]["speech/validation"] * 3600 == pytest.approx(3.0, abs=0.01)
    seen = 0
    for entry, audio in pack.iter_pack(tmp_path / "pack"):
        seen += 1
        assert len(audio) == entry["frames"] == round(entry["duration"] * SR)
        assert entry["split"] in entry["file"]
        np.testing.assert_array_equal(pack.read_pack_segment(tmp_path / "pack", entry), audio)
        reference, _ = sf.read(out / entry["segment"], dtype="float32")
        snr = 10 * np.log10(np.sum(reference**2) / np.sum((reference - audio) ** 2))
        assert snr > 15  # aligned and close: Opus at 64 kbit/s on tones
    assert seen == 3
    quality = measure_pack_quality(out, tmp_path / "pack")
    assert quality["segments"] == 3 and 0 <= quality["all"]["lsd_db_floor60"] < 10
    reread = pack.read_pack_index(tmp_path / "pack")
    again = pack.write_pack(out, chosen, tmp_path / "pack", kbps=64)
    assert again == reread  # the existing pack is reused, not encoded again


def test_a_pack_whose_index_fails_to_write_has_no_index(built, tmp_path, monkeypatch) -> None:
    """The index is written last and whole: a crash before it leaves shards without one
    (the next run redoes them), never a truncated index or one naming removed shards."""
    out, rows = built
    chosen = pack.select_segments(rows, {"speech": 1.0})
    pack.write_pack(out, chosen, tmp_path / "pack", kbps=64)
    disk_fills_while_writing(monkeypatch, pack.INDEX_NAME)
    with pytest.raises(OSError):
        pack.write_pack(out, chosen, tmp_path / "pack", kbps=32)
    assert not (tmp_path / "pack" / pack.INDEX_NAME).exists()
    assert partials(tmp_path / "pack") == []


def test_heldout_packages_are_never_in_train_or_validation() -> None:
    keys = {f"pkg{i % 3}/file{i:03d}.ogg": f"pkg{i % 3}" for i in range(300)}
    plain = corpus.assign_splits(keys, 0.05)
    split = corpus.assign_splits(keys, 0.05, heldout={"pkg1"})
    assert all(split[k] == "heldout" for k, p in keys.items() if p == "pkg1")
    assert all(split[k] == plain[k] for k, p in keys.items() if p != "pkg1")
    assert not set(corpus.HELDOUT_PACKAGES) & set(corpus.DEBIAN_PACKAGES)


@pytest.mark.parametrize("status, installed", [("install ok installed", True),
                                                ("unknown ok not-installed", False),
                                                ("deinstall ok config-files", False)])
def test_a_package_counts_as_installed_only_when_dpkg_says_so(
        monkeypatch: pytest.MonkeyPatch, status: str, installed: bool) -> None:
    from apcodec_cli.data import debian

    monkeypatch.setattr(debian.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, status, ""))
    assert debian.is_installed("any") is installed

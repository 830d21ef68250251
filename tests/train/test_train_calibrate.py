"""Level calibration (train/calibrate.py): the decoded energy per bin matches the source's
afterwards, and the codes do not change."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from apcodec_cli.models import weights
from apcodec_cli.train.calibrate import bin_energy_ratio, calibrate, measure, pick_windows
from apcodec_cli.train.data import Clip

from helpers import invoke, script


def _clips(folder: Path, count: int = 3, seconds: float = 0.5) -> list[Clip]:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        t = np.arange(int(48000 * seconds)) / 48000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"c{i}.wav"
        sf.write(path, wav.astype(np.float32), 48000, subtype="FLOAT")
        clips.append(Clip(str(path), 0, t.size, "train", True, "music"))
    clips.append(Clip(str(folder / "c0.wav"), 0, t.size, "validation", True, "music"))
    return clips


def test_calibration_matches_the_energy_per_bin_and_keeps_the_codes(tmp_path, tiny_weights):
    model = weights.load(tiny_weights).model
    hop = model.config.samples_per_frame
    samples = 12000 // hop * hop
    windows = pick_windows(_clips(tmp_path), 8, samples)
    assert all(clip.split == "train" for clip, _, _ in windows)
    wav = torch.from_numpy(sf.read(tmp_path / "c1.wav", dtype="float32")[0][:samples]).view(1, 1, -1)
    codes_before = model(wav).quantized.codes.clone()
    before, levels_before = measure(model, windows, quiet=True)
    calibrate(model, windows, passes=3, quiet=True)
    after, levels_after = measure(model, windows, quiet=True)
    db_before = 10 * torch.log10(before).abs().mean()
    db_after = 10 * torch.log10(after).abs().mean()
    assert db_before > 1.0  # random weights are far off
    assert db_after < 0.25 * db_before
    # The last step sets the mean of the windows' levels in dB to 0.
    assert abs(float(levels_before.mean())) > 1.0
    assert abs(float(levels_after.mean())) < 0.01
    assert torch.equal(bin_energy_ratio(model, windows, quiet=True), after)
    assert torch.equal(model(wav).quantized.codes, codes_before)


def test_windows_are_shared_equally_between_categories() -> None:
    long = [Clip(f"m{i}.wav", 0, 96_000, "train", True, "music") for i in range(30)]
    speech = [Clip(f"s{i}.wav", 0, 96_000, "train", True, "speech") for i in range(5)]
    short = [Clip(f"t{i}.wav", 0, 1_000, "train", True, "speech") for i in range(50)]
    held = [Clip("v.wav", 0, 96_000, "validation", True, "speech")]
    picked = pick_windows(long + speech + short + held, 9, 48_000)
    categories = [clip.category for clip, _, _ in picked]
    # 5 of the 9 go to music (the odd one to the first category), 4 to speech; never a
    # clip shorter than the window, never a validation clip.
    assert categories.count("music") == 5 and categories.count("speech") == 4
    assert all(clip.frames >= 48_000 and clip.split == "train" and length == 48_000
               for clip, _, length in picked)
    assert picked == pick_windows(long + speech + short + held, 9, 48_000)  # deterministic


def test_packages_of_short_clips_get_their_turn() -> None:
    """A package whose clips are all shorter than a window still gives windows (whole
    clips, cut to a multiple of the hop), as many as a package of long clips."""
    words = [Clip(f"w{i}.wav", 0, 30_000 + i, "train", True, "speech", "words")
             for i in range(40)]
    read = [Clip(f"r{i}.wav", 0, 200_000, "train", True, "speech", "read") for i in range(3)]
    tiny = [Clip(f"t{i}.wav", 0, 500, "train", True, "speech", "clicks") for i in range(9)]
    picked = pick_windows(words + read + tiny, 6, 96_000, shortest=24_000, multiple=320)
    packages = [clip.package for clip, _, _ in picked]
    assert packages.count("words") == 3 and packages.count("read") == 3
    for clip, start, length in picked:
        assert length == min(96_000, clip.frames) // 320 * 320
        assert start == (clip.frames - length) // 2 and start + length <= clip.frames


def test_calibrating_a_file_keeps_its_code_tables(tmp_path, tiny_weights) -> None:
    main = script("calibrate").main
    from apcodec_cli.train.codetables import TableCounts
    config = weights.load(tiny_weights).model.config
    source = tmp_path / "tables.pt"
    counts = TableCounts(config.n_codebooks, 1 << config.bits_per_code)
    counts.add(np.random.default_rng(0).integers(0, 1 << config.bits_per_code,
                                                 (1, config.n_codebooks, 300)))
    tables = counts.fit(n_buckets=2, iterations=2)
    weights.store_code_tables(tiny_weights, tables, source, data="tones")
    (tmp_path / "audio").mkdir()
    _clips(tmp_path / "audio")
    out = tmp_path / "calibrated.pt"
    done = invoke(main, "--weights", source, "--data", tmp_path / "audio", "--out", out,
                  "--clips", "4", "--seconds", "0.25", "-q")
    assert done.exit_code == 0, done.output
    before, after = weights.load(source), weights.load(out)
    assert after.network_fingerprint != before.network_fingerprint  # the bias moved
    assert after.code_tables is not None
    for key, value in before.code_tables.to_arrays().items():
        assert np.array_equal(after.code_tables.to_arrays()[key], value)
    assert after.tables_info == {"data": "tones"}
    assert done.output.split("fingerprint ")[1].split(";")[0] == after.fingerprint.hex()


def test_a_silent_window_counts_for_nothing(tmp_path, tiny_weights):
    model = weights.load(tiny_weights).model
    hop = model.config.samples_per_frame
    samples = 12000 // hop * hop
    clips = _clips(tmp_path)
    sf.write(tmp_path / "silent.wav", np.zeros(samples, np.float32), 48000, subtype="FLOAT")
    silent = Clip(str(tmp_path / "silent.wav"), 0, samples, "train", True, "music", "quiet")
    windows = pick_windows(clips, 8, samples)
    ratio, levels = measure(model, windows, quiet=True)
    ratio_silence, with_silence = measure(model, windows + [(silent, 0, samples)], quiet=True)
    assert len(with_silence) == len(levels) and torch.equal(with_silence, levels)
    assert torch.equal(ratio_silence, ratio)
    assert torch.isfinite(levels).all()

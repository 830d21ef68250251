"""`apcodec eval`: metrics, clip choice, aggregation, tables, the Opus round trip, the command.

Tests of the optional metric packages (the `eval` extra) and of opus-tools skip where they
are not installed, so the suite passes with `.[test]` alone.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from apcodec_cli.evaluate import metrics, opus, report
from apcodec_cli.evaluate.cli import evaluate
from apcodec_cli.evaluate.run import ClipError, collect_clips, load_clip

from helpers import invoke, script

RATE = 48_000


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """(T,) harmonic tone reaching 13 kHz, slowly modulated, with a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(0.1 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 60))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + noise).astype(np.float32)


def speechlike(seconds: float) -> np.ndarray:
    """(T,) voiced "syllables": a gliding 120 Hz pulse train gated three times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 40))
    return (0.2 * voiced * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)).astype(np.float32)


def low_passed(x: np.ndarray, hz: int = 4000) -> np.ndarray:
    return soxr.resample(soxr.resample(x, RATE, 2 * hz), 2 * hz, RATE)[:len(x)]


def noisy(x: np.ndarray, level: float, seed: int = 1) -> np.ndarray:
    return x + level * np.random.default_rng(seed).standard_normal(x.size).astype(np.float32)


# ---- metrics in numpy ------------------------------------------------------------------------

@pytest.mark.parametrize("distance", [metrics.log_spectral_distance, metrics.log_mel_distance])
def test_spectral_distances_zero_when_identical_and_grow_with_noise(distance) -> None:
    x = music(1.0)
    assert distance(x, x, RATE) == pytest.approx(0.0, abs=1e-9)
    scores = [distance(x, noisy(x, level), RATE) for level in (0.001, 0.01, 0.1)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_spectral_distances_not_measurable_on_silence_or_nothing() -> None:
    silence = np.zeros(RATE, np.float32)
    assert math.isnan(metrics.log_spectral_distance(silence, silence, RATE))
    assert math.isnan(metrics.log_spectral_distance(music(0.01), music(0.01), RATE))
    assert math.isnan(metrics.log_mel_distance(silence[:0], silence[:0], RATE))


def test_mel_filterbank_covers_the_band_with_unit_area_filters() -> None:
    fb = metrics.mel_filterbank(48_000)
    assert fb.shape == (80, 513) and not fb.flags.writeable
    assert np.all(fb >= 0) and np.all(fb.sum(axis=1) > 0)
    peaks = fb.argmax(axis=1)
    assert np.all(peaks[1:] >= peaks[:-1]) and peaks[-1] > 480
    covered = fb.sum(axis=0) > 0
    assert covered[1:peaks[-1]].all()
    area = fb.sum(axis=1) * (24_000 / 512)
    assert np.allclose(area[40:], np.ones(40), rtol=0.05)


def test_the_mel_distance_is_that_of_the_training_losses() -> None:
    """train/mel.LogMel (torch, float32) computes the spectrogram of these numbers."""
    torch = pytest.importorskip("torch")
    from apcodec_cli.train.mel import LogMel

    x, y = music(0.5), noisy(music(0.5), 0.01)
    mel = LogMel(RATE)
    expected = (mel(torch.from_numpy(x).view(1, 1, -1)) -
                mel(torch.from_numpy(y).view(1, 1, -1))).abs().mean().item()
    assert metrics.log_mel_distance(x, y, RATE) == pytest.approx(expected, rel=1e-4)
    filters = metrics.mel_filterbank(RATE).astype(np.float32)  # the one filterbank
    assert torch.equal(mel.filters, torch.from_numpy(filters))


def test_missing_package_names_the_extra() -> None:
    with pytest.raises(metrics.MissingDependencyError, match=r"apcodec\[eval\]"):
        metrics.require("no_such_metric_package")


# ---- metrics of the eval extra ---------------------------------------------------------------

def test_visqol_high_for_identical_lower_for_low_passed() -> None:
    pytest.importorskip("visqol")
    x = music(2.0)
    same = metrics.visqol(x, x, RATE)
    assert same > 4.0
    assert metrics.visqol(x, low_passed(x), RATE) < same - 1.0
    assert math.isnan(metrics.visqol(x[:RATE // 2], x[:RATE // 2], RATE))  # under ~1 s


def test_visqol_bands_find_the_band_a_low_pass_removed() -> None:
    pytest.importorskip("visqol")
    x = music(2.0)
    centres, same, score = metrics.visqol_bands(x, x, RATE)
    assert centres.shape == same.shape == (32,) and np.all(np.diff(centres) > 0)
    assert score == pytest.approx(metrics.visqol(x, x, RATE)) and np.all(same > 0.99)
    _, cut, _ = metrics.visqol_bands(x, low_passed(x), RATE)
    assert np.all(cut[centres < 2000] > 0.9) and np.all(cut[centres > 8000] < 0.7)


def test_band_table_lists_every_band_and_the_difference() -> None:
    markdown = script("music_bands").markdown

    table = markdown(np.array([100.0, 1000.0]), np.array([[0.9, 0.5], [0.7, 0.3]]),
                     np.array([[0.8, 0.8], [0.8, 0.8]]), "opus 12k")
    assert table.splitlines()[0] == "| band | centre (Hz) | apcodec | opus 12k | difference |"
    assert table.splitlines()[2:] == ["| 0 | 100 | 0.800 | 0.800 | +0.000 |",
                                      "| 1 | 1000 | 0.400 | 0.800 | -0.400 |"]


def test_hop_lines_measure_a_signal_repeated_every_hop() -> None:
    from apcodec_cli.evaluate.artefacts import hop_lines_db

    x = music(2.0)
    assert np.allclose(hop_lines_db(x, x, RATE, 40), 0)
    pulse = np.zeros(40)
    pulse[0] = 0.02
    buzzed = x + np.tile(pulse, len(x) // 40)  # a click every hop: lines at 1.2 kHz·k
    excess = hop_lines_db(x, buzzed, RATE, 40)
    assert excess.shape == (6,) and np.all(excess > 6)
    assert np.all(np.abs(hop_lines_db(x, buzzed, RATE, 37)) < 1)  # other lines: no excess


def test_pesq_and_estoi_rank_clean_above_noisy() -> None:
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    x = speechlike(3.0)
    assert metrics.pesq_wb(x, x, RATE) > 4.0 > metrics.pesq_wb(x, noisy(x, 0.05), RATE)
    assert metrics.estoi(x, x, RATE) > 0.99 > metrics.estoi(x, noisy(x, 0.05), RATE)
    assert math.isnan(metrics.estoi(x[:4000], x[:4000], RATE))  # too few frames: NaN
    assert set(metrics.score(x, x, RATE, speech=False)) == {
        "visqol", "lsd", "mel", "level", "hop_lines", "hop_peaks", "off_peaks", "code_lines",
        "quiet_floor", "bandwidth_loss"}
    assert metrics.score(x, 0.5 * x, RATE, speech=False)["level"] == pytest.approx(-6.02, abs=0.01)


# ---- aggregation and tables ------------------------------------------------------------------

def test_mean_and_standard_error() -> None:
    stat = report.mean_se([1.0, 2.0, 3.0, float("nan"), None])
    assert (stat.mean, stat.n) == (2.0, 3)
    assert stat.se == pytest.approx(1.0 / math.sqrt(3))  # sample std 1, three values
    assert report.mean_se([5.0]).n == 1 and math.isnan(report.mean_se([5.0]).se)
    assert report.mean_se([]).n == 0


def test_format_stat() -> None:
    assert report.format_stat(report.Stat(3.2861, 0.0512, 4), 2, 4) == "3.29 ± 0.05"
    assert report.format_stat(report.Stat(3.2861, 0.0512, 3), 2, 4) == "3.29 ± 0.05 (n=3)"
    assert report.format_stat(report.Stat(1.5, math.nan, 1), 1, 1) == "1.5"
    assert report.format_stat(report.Stat(math.nan, math.nan, 0), 2, 4) == "–"


def _row(category: str, system: str, **scores: float) -> dict:
    return {"category": category, "system": system, "kbps": 6.0, **scores}


def test_one_table_per_category_with_only_measured_columns() -> None:
    rows = [_row("speech", "apcodec", visqol=3.0, pesq=2.0, estoi=0.8, lsd=9.0, mel=1.0),
            _row("speech", "apcodec", visqol=4.0, pesq=3.0, estoi=0.9, lsd=7.0, mel=0.5),
            _row("speech", "opus-6k-cbr", visqol=2.0, pesq=1.5, estoi=0.6, lsd=12.0, mel=1.5),
            _row("music", "apcodec", visqol=3.5, lsd=8.0, mel=0.9)]
    text = report.markdown_report(report.summarize(rows), "Preamble.")
    assert text.startswith("Preamble.\n\n### music (1 clip)\n")
    music_part, speech_part = text.split("### speech (2 clips)")
    assert "PESQ" not in music_part and "| apcodec | 6.00 | 3.50 | 8.00 | 0.900 |" in music_part
    assert "| apcodec | 6.00 ± 0.00 | 3.50 ± 0.50 | 2.50 ± 0.50 | 0.850 ± 0.050 |" in speech_part
    assert "| opus-6k-cbr | 6.00 (n=1) |" in speech_part  # fewer clips than the category
    summary = report.summary_json(report.summarize(rows))
    assert summary["music"]["apcodec"]["pesq"] == {"mean": None, "se": None, "n": 0}
    assert summary["speech"]["apcodec"]["pooled_peaks"]["n"] == 0  # rows without profiles


def test_pooled_peaks_are_a_statistic_of_the_set_of_clips() -> None:
    """The pooled column averages each multiple's excess over the clips, then takes the
    largest: two clips with their largest at different multiples pool to less."""
    rows = [_row("speech", "apcodec", hop_peaks=4.0, hop_peak_profile=[4, 0, 0, 0, 0, 0]),
            _row("speech", "apcodec", hop_peaks=4.0, hop_peak_profile=[0, 4, 0, 0, 0, 1]),
            _row("speech", "apcodec", hop_peaks=2.0, hop_peak_profile=[2, 0, 0, 0, 0, 0]),
            _row("speech", "apcodec", hop_peaks=math.nan, hop_peak_profile=[math.nan] * 6)]
    stat = report.summarize(rows)["speech"]["apcodec"]["pooled_peaks"]
    assert stat.mean == pytest.approx(2.0) and stat.n == 3
    assert stat.se == pytest.approx(np.std([4, 0, 2], ddof=1) / np.sqrt(3))
    assert "pooled peaks dB" in report.markdown_report(report.summarize(rows))


# ---- clips -----------------------------------------------------------------------------------

def _corpus(root: Path) -> Path:
    """A corpus folder: two packages of validation music, speech, and some training rows."""
    rows = []
    for i in range(6):
        for category, package in (("music", f"m{i % 2}"), ("speech", "s")):
            path = f"segments/{package}/{category}{i}.flac"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / path, music(1.2, seed=i), RATE)
            split = "train" if i == 5 else "validation"
            rows.append({"path": path, "category": category, "package": package,
                         "split": split, "duration": 1.2})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_corpus_clips_validation_only_deterministic_packages_take_turns(tmp_path) -> None:
    root = _corpus(tmp_path)
    clips = collect_clips(root, None, max_clips=2)
    assert [c.category for c in clips] == ["music", "music", "speech", "speech"]
    assert {Path(c.path).parent.name for c in clips[:2]} == {"m0", "m1"}
    assert clips == collect_clips(root, None, max_clips=2)
    everything = collect_clips(root, "speech", max_clips=None)
    assert len(everything) == 5 and "speech5.flac" not in {c.name for c in everything}
    with pytest.raises(ClipError):
        collect_clips(root, None, max_clips=2, min_seconds=2.0)


def test_folder_clips_need_a_category(tmp_path) -> None:
    sf.write(tmp_path / "a.wav", music(1.5), 44100)
    with pytest.raises(ClipError, match="--category"):
        collect_clips(tmp_path, None, None)
    (clip,) = collect_clips(tmp_path, "music", None)
    wav = load_clip(clip.path, seconds=1.0)
    assert wav.shape == (RATE,) and wav.dtype == np.float32  # resampled, cropped from the start


# ---- Opus ------------------------------------------------------------------------------------

def test_opus_round_trip_keeps_length_and_bitrate() -> None:
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        pytest.skip("opus-tools not installed (apt-get install opus-tools)")
    x = speechlike(1.0)
    assert opus.round_trip(x, 6.0).audio.shape == x.shape  # VBR, the default
    result = opus.round_trip(x, 6.0, vbr=False)
    assert result.audio.shape == x.shape and result.audio.dtype == np.float32
    # 51 packets of 15 bytes (one more for the pre-skip), 4 Ogg page headers (133 bytes)
    # and the two header packets (159 bytes): 8.7 kbit/s over 1 s, 6.8 over 10 s
    assert 6.0 < result.kbps < 9.5
    assert result.size_bytes * 8 / 1000 == pytest.approx(result.kbps)


def test_missing_opus_tools_say_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(opus.shutil, "which", lambda tool: None)
    with pytest.raises(opus.OpusToolsMissingError, match="apt-get install opus-tools"):
        opus.require_opus_tools()
    with pytest.raises(opus.OpusToolsMissingError, match=r"opus-tools\)$"):
        opus.require_opus_tools(way_out="")  # a command that cannot do without Opus


# ---- the command -----------------------------------------------------------------------------

def test_command_module_imports_only_click() -> None:
    script = ("import sys, apcodec_cli.evaluate.cli\n"
              "print(sorted(m for m in ('torch', 'numpy', 'soundfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_command_end_to_end(tmp_path, tiny_weights) -> None:
    pytest.importorskip("visqol")
    sf.write(tmp_path / "clip.wav", music(1.5), RATE)
    args = ["-w", str(tiny_weights), "--data", str(tmp_path), "--category", "music",
            "--no-opus", "--device", "cpu", "--json-out", str(tmp_path / "out.json"), "-q"]
    result = invoke(evaluate, *args)
    assert result.exit_code == 0, result.output
    assert "### music (1 clip)" in result.stdout and "| apcodec | " in result.stdout
    document = json.loads((tmp_path / "out.json").read_text())
    (row,) = document["rows"]
    assert row["system"] == "apcodec" and row["kbps"] > 6.0 and row["visqol"] is not None
    assert len(row["hop_peak_profile"]) == 6
    # hop_peaks is the profile's largest, measured once (and what metrics.score measures)
    assert row["hop_peaks"] == max(row["hop_peak_profile"])
    source = sf.read(tmp_path / "clip.wav", dtype="float32")[0]
    assert metrics.score(source, source, RATE, speech=False, known={"hop_peaks": 9.0}
                         )["hop_peaks"] == 9.0
    again = invoke(evaluate, *args)
    assert again.exit_code == 2 and "--force" in again.output


def test_jobs_are_capped_by_the_clips_and_cores(tmp_path, tiny_weights, monkeypatch) -> None:
    pytest.importorskip("visqol")
    from apcodec_cli import machine, runtime

    monkeypatch.setattr(machine, "available_memory", lambda: 8 * runtime.WORKER_MEMORY)
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a", "b"):
        sf.write(two / f"{name}.wav", music(1.5), RATE)
    result = invoke(evaluate, "-w", tiny_weights, "--data", two, "--category", "music",
                    "--no-opus", "--device", "cpu", "--jobs", "8")
    assert result.exit_code == 0, result.output
    assert "apcodec: warning: --jobs 2: running 1 worker (1 CPU core" in result.stderr
    assert "### music (2 clips)" in result.stdout


def test_command_fails_in_one_line_without_the_eval_extra(tmp_path, tiny_weights,
                                                           monkeypatch) -> None:
    def missing(module: str):
        raise metrics.MissingDependencyError(f"the {module!r} module is missing: "
                                             "pip install 'apcodec[eval]'")

    monkeypatch.setattr(metrics, "require", missing)
    sf.write(tmp_path / "clip.wav", music(1.5), RATE)
    result = invoke(evaluate, "-w", tiny_weights, "--data", tmp_path, "--category", "speech",
                    "--no-opus")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("apcodec: error: the 'visqol' module is missing: "
                                     "pip install 'apcodec[eval]'")


def test_compare_pairs_clips_and_counts_the_better_side(tmp_path) -> None:
    import json
    from apcodec_cli.evaluate import compare
    compare_runs = script("compare_runs").main

    def rows(pesq, level):
        return {"rows": [{"clip": f"c{i}", "category": "speech", "system": "apcodec",
                          "pesq": p, "level": l} for i, (p, l) in enumerate(zip(pesq, level))]}
    base, cand = tmp_path / "a.json", tmp_path / "b.json"
    base.write_text(json.dumps(rows([1.0, 2.0, 3.0], [-3.0, 1.0, 0.5])))
    cand.write_text(json.dumps(rows([1.5, 2.1, 2.9], [-1.0, -2.0, 0.0])))
    records = {r["metric"]: r for r in compare.compare(compare.read_rows(base), compare.read_rows(cand))}
    assert records["pesq"]["difference"] == pytest.approx(0.5 / 3)
    assert records["pesq"]["better"] == 2 and records["pesq"]["clips"] == 3
    assert records["level"]["better"] == 2  # nearer 0 dB on c0 and c2
    result = invoke(compare_runs, base, cand)
    assert result.exit_code == 0 and "| speech | apcodec | pesq | 3 |" in result.output
    # Two systems of one run: the same file twice.
    both = tmp_path / "both.json"
    opus = [dict(row, system="opus-6k-vbr") for row in json.loads(cand.read_text())["rows"]]
    both.write_text(json.dumps({"rows": json.loads(base.read_text())["rows"] + opus}))
    result = invoke(compare_runs, both, both, "--systems", "apcodec", "opus-6k-vbr")
    assert result.exit_code == 0, result.output
    assert "| speech | opus-6k-vbr vs apcodec | pesq | 3 | 2.000 | 2.167 | +0.167 ± " \
        in result.output
    result = invoke(compare_runs, both, both, "--systems", "apcodec", "opus-12k-vbr")
    assert result.exit_code == 1 and "share no scored clip of those systems" in result.output
    # Clips of the same name from two folders are two clips.
    twins = tmp_path / "twins.json"
    twins.write_text(json.dumps({"rows": [
        {"clip": "intro.ogg", "path": f"{folder}/intro.ogg", "category": "music",
         "system": "apcodec", "visqol": 3.0} for folder in ("a", "b")]}))
    assert [r["clips"] for r in compare.compare(compare.read_rows(twins), compare.read_rows(twins))] \
        == [2]


def test_compare_pools_the_line_peaks_of_the_clips_both_scored(tmp_path) -> None:
    """The pooled figure of each file over the paired clips, their difference, a resampled
    standard error, and no count of clips better (it is not a figure of one clip)."""
    import json
    from apcodec_cli.evaluate import compare
    compare_runs = script("compare_runs").main
    rng = np.random.default_rng(6)
    scatter = rng.normal(0, 1, (40, 6))
    lined = scatter + np.array([0, 3, 0, 0, 0, 0])

    def rows(profiles):
        return {"rows": [{"clip": f"c{i}", "category": "speech", "system": "apcodec",
                          "hop_peak_profile": list(p)} for i, p in enumerate(profiles)]}
    base, cand = tmp_path / "a.json", tmp_path / "b.json"
    base.write_text(json.dumps(rows(lined)))
    cand.write_text(json.dumps(rows(scatter[:30])))  # ten clips fewer: pairs only 30
    (record,) = compare.compare(compare.read_rows(base), compare.read_rows(cand))
    assert record["metric"] == "pooled_peaks" and record["clips"] == 30
    assert record["baseline"] == pytest.approx(lined[:30].mean(0).max())
    assert record["difference"] == pytest.approx(scatter[:30].mean(0).max() - record["baseline"])
    assert record["difference"] < -2 and 0 < record["se"] < 0.5 and record["better"] is None
    result = invoke(compare_runs, base, cand)
    assert result.exit_code == 0 and "| pooled_peaks | 30 |" in result.output and "| –/30 |" in result.output


def test_bands_command_end_to_end(tmp_path, tiny_weights, monkeypatch) -> None:
    pytest.importorskip("visqol")
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        pytest.skip("opus-tools not installed (apt-get install opus-tools)")
    bands = script("music_bands").main

    sf.write(tmp_path / "clip.wav", music(1.5), RATE)
    result = invoke(bands, "--weights", tiny_weights, "--data", tmp_path, "--seconds", "1.5",
                    "-q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"weights {tiny_weights}, 1 music clip, first 1.5 s")
    assert sum(1 for line in lines if line.startswith("| ") and line[2].isdigit()) == 32
    assert lines[-1].startswith("hop lines (multiples of 1200 Hz)")
    monkeypatch.setattr(opus.shutil, "which", lambda tool: None)
    missing = invoke(bands, "--weights", tiny_weights, "--data", tmp_path)
    assert missing.exit_code == 1 and "install Debian's opus-tools" in missing.output
    assert "--no-opus" not in missing.output

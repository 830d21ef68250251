"""The listening report of `apcodec eval --report`: PNG encoding, spectrograms, the page's
structure and the report folder. No browser here (test_listening_browser.py has it)."""

from __future__ import annotations

import html.parser
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from apcodec_cli.evaluate import report
from apcodec_cli.evaluate.cli import evaluate
from apcodec_cli.evaluate.listening import folder, media, page, png, spectrogram
from helpers import tone

RATE = 48_000


def decode_png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, palette) of an 8-bit palette PNG, every CRC checked: the reader of these
    tests, independent of the encoder (filters None, Sub and Up)."""
    assert data[:8] == png.SIGNATURE
    chunks, at = {}, 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 3) and b"IEND" in chunks
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, width + 1)
    pixels = np.zeros((height, width), np.uint8)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == png.SUB:
            row = np.cumsum(row) % 256
        elif kind == png.UP:
            row = (row + (pixels[y - 1] if y else 0)) % 256
        else:
            assert kind == png.NONE
        pixels[y] = row
    return pixels, np.frombuffer(chunks[b"PLTE"], np.uint8).reshape(-1, 3)


def test_png_round_trip_through_every_filter() -> None:
    rng = np.random.default_rng(0)
    smooth = np.add.outer(np.arange(40), np.arange(50)).astype(np.uint8)  # Sub and Up win
    noise = rng.integers(0, 200, (30, 50), dtype=np.uint8)  # None wins on most rows
    pixels = np.vstack([smooth, noise])
    colours = spectrogram.palette(200)
    data = png.encode_palette_png(pixels, colours)
    decoded, palette = decode_png(data)
    assert np.array_equal(decoded, pixels) and np.array_equal(palette, colours)
    filters = set(np.frombuffer(zlib.decompress(data[data.index(b"IDAT") + 4:]), np.uint8)
                  .reshape(70, 51)[:, 0].tolist())
    assert filters == {png.NONE, png.SUB, png.UP}
    with pytest.raises(ValueError, match="beyond"):
        png.encode_palette_png(pixels, colours[:100])
    with pytest.raises(ValueError):
        png.encode_palette_png(np.zeros((0, 4), np.uint8), colours)


def test_spectrogram_levels_are_those_of_a_full_scale_sine_in_both_views() -> None:
    t = np.arange(RATE) / RATE
    for view in spectrogram.VIEWS:
        db = spectrogram.level_db(np.sin(2 * np.pi * 1000 * t), view)
        assert db.shape == (view.rows, spectrogram.COLUMNS)
        row = view.rows - 1 - int(1000 / view.max_hz * view.rows)  # low frequencies last
        middle = db[:, 20:-20]  # the first and last frames reach past the signal's ends
        assert -1.5 < middle[row].min() <= db.max() < 0.1
        assert np.argmax(db[:, 100]) == row
        assert db[0].max() < -60  # nothing at the top of the band


def test_one_colour_scale_for_every_image_of_a_clip() -> None:
    loud = tone(1.0)[0]
    images, top = spectrogram.clip_images({"loud": loud, "quiet": loud / 10}, colours=64)
    assert top == np.ceil(spectrogram.level_db(loud, spectrogram.ZOOM).max())
    for view in spectrogram.VIEWS:
        louder = images["loud", view.name].astype(int) - images["quiet", view.name]
        assert images["loud", view.name].max() <= 63 and louder.max() > 10  # 20 dB apart
    assert len(spectrogram.palette(64)) == 64
    assert spectrogram.palette()[0].sum() < spectrogram.palette()[-1].sum()


class _Links(html.parser.HTMLParser):
    """Every src and href of a page, its tags, its text and its table rows (cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.text = ""
        self.rows: list[list[str]] = []
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self.links += [(tag, v) for k, v in attrs if k in ("src", "href")]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = self.in_cell and tag not in ("td", "th")

    def handle_data(self, data: str) -> None:
        self.text += data
        if self.in_cell:
            self.rows[-1][-1] += data


def parse(index: Path) -> _Links:
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def check_self_contained(report_dir: Path) -> _Links:
    """The page opens from disk or a zip: relative links to files that exist, no script."""
    parsed = parse(report_dir / page.PAGE)
    assert parsed.links and "script" not in parsed.tags and "link" not in parsed.tags
    for _, link in parsed.links:
        assert ":" not in link and not link.startswith(("/", "..")), link
        assert (report_dir / link).is_file(), link
    return parsed


def _rows(clip: dict, systems: dict[str, float]) -> list[dict]:
    return [{"clip": clip["name"], "path": clip["path"], "category": clip["category"],
             "system": s, "kbps": 6.1, "visqol": v, "lsd": 5.0, "level": 0.5}
            for s, v in systems.items()]


def test_page_structure_without_the_eval_extra(tmp_path) -> None:
    clips = [{"name": f"c{i}.wav", "path": f"music/c{i}.wav", "category": "music"}
             for i in range(2)]
    rows = []
    for i, clip in enumerate(clips):
        signals = {"source": tone(1.0)[0], "apcodec": tone(1.0, seed=1)[0] * 0.9,
                   "opus-6k-vbr": tone(1.0, seed=2)[0] * 0.5}
        media.write_clip(tmp_path, clip, signals)
        rows += _rows(clip, {"apcodec": 3.0 + i, "opus-6k-vbr": 2.0, "opus-12k-vbr": 3.5})
    settings = [("weights fingerprint", "0123abcd"), ("command", "apcodec eval --data x")]
    page.write_page(tmp_path, clips, rows, report.summarize(rows), settings,
                    ("apcodec", "opus-6k-vbr"))
    parsed = check_self_contained(tmp_path)
    audio = [link for tag, link in parsed.links if tag == "audio"]
    images = [link for tag, link in parsed.links if tag == "img"]
    assert len(audio) == 6 and all(link.endswith(".flac") for link in audio)
    assert len(images) == 1 + 12  # the colour bar, then two views of 3 signals of 2 clips
    data, rate = sf.read(tmp_path / audio[1], dtype="int16")
    assert rate == RATE and data.ndim == 1 and len(data) == RATE
    assert sf.info(tmp_path / audio[1]).subtype == "PCM_16"
    for link in images:
        pixels, _ = decode_png((tmp_path / link).read_bytes())
        assert pixels.shape[1] in (spectrogram.COLUMNS, media.COLOURS)
    text = " ".join(parsed.text.split())
    assert "16-bit FLAC, 48 kHz, mono" in text
    assert parsed.rows[-2:] == [list(pair) for pair in settings]  # the last table
    first = next(i for i, row in enumerate(parsed.rows) if row[0] == "system")
    means, vs6, vs12 = (parsed.rows[i:i + 4] for i in (first, first + 4, first + 8))
    assert means[0][:3] == ["system", "kbit/s", "ViSQOL ↑"] and "PESQ-WB ↑" not in means[0]
    assert means[1][:3] == ["apcodec", "6.10 ± 0.00", "3.50 ± 0.50"]  # mean ± SE, 2 clips
    assert "APCodec against opus-6k-vbr" in text and "APCodec against opus-12k-vbr" in text
    assert vs6[1] == ["ViSQOL ↑", "3.50", "2.00", "+1.50 ± 0.50", "2 of 2"]
    assert vs12[1] == ["ViSQOL ↑", "3.50", "3.50", "+0.00 ± 0.50", "1 of 2"]
    assert vs12[3] == ["level dB", "0.50", "0.50", "+0.00 ± 0.00", "0 of 2"]
    assert text.count("the same for every image of this clip") == 2


def test_report_folder_replaced_only_when_it_is_a_report(tmp_path) -> None:
    target = tmp_path / "r"
    folder.check_target(target, force=False)  # absent: fine
    with folder.building(target) as work:
        (work / page.PAGE).write_text(f'<meta name=generator content="{page.GENERATOR}">')
    assert folder.is_report(target) and [p.name for p in tmp_path.iterdir()] == ["r"]
    with pytest.raises(folder.ReportFolderError, match="--force"):
        folder.check_target(target, force=False)
    folder.check_target(target, force=True)
    with pytest.raises(RuntimeError):
        with folder.building(target) as work:
            (work / "half").write_text("x")
            raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # old report kept, no litter
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(folder.ReportFolderError, match="not a listening report"):
        folder.check_target(other, force=True)


def test_command_writes_a_report_and_says_opus_was_not_run(tmp_path, tiny_weights) -> None:
    pytest.importorskip("visqol")
    data = tmp_path / "clips"
    data.mkdir()
    sf.write(data / "a.wav", tone(1.2)[0], RATE)
    out = tmp_path / "report"
    args = ["-w", str(tiny_weights), "--data", str(data), "--category", "music",
            "--no-opus", "--device", "cpu", "--seconds", "1", "--report", str(out)]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    assert "listening report" in result.stderr and "| apcodec |" in result.stdout
    parsed = check_self_contained(out)
    assert [link.rsplit("/", 1)[1] for tag, link in parsed.links if tag == "audio"] \
        == ["source.flac", "apcodec.flac"]
    text = " ".join(parsed.text.split())
    assert "Opus was not run (--no-opus)" in text and "UNTRAINED" in text
    assert f"--seconds 1 --no-opus --report {out}" in text
    index = json.loads(next(out.glob("clips/*/clip.json")).read_text())
    assert index["seconds"] == 1.0 and index["signals"] == ["source", "apcodec"]
    again = CliRunner().invoke(evaluate, args)
    assert again.exit_code == 2 and "--force" in again.output


def test_the_report_loads_only_for_a_report() -> None:
    script = ("import sys\n"
              "from apcodec_cli.evaluate import cli, run, report, opus, compare\n"
              "print([m for m in sys.modules if '.listening' in m])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_committed_example_is_whole_and_small() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "listening-report"
    parsed = check_self_contained(example)
    assert sum(1 for tag, _ in parsed.links if tag == "audio") == 6
    assert sum(p.stat().st_size for p in example.rglob("*") if p.is_file()) < 1_500_000

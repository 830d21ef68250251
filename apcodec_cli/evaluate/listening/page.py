"""The listening report's page: one static HTML file over the clip files of `media.py`.

`index.html` needs no server and no network: styles are inline, there is no script, and
every link is relative (`clips/...`, `colours.png`), so the folder works opened from disk
(a file:// URL), copied anywhere or unpacked from a zip. It holds, in this order: what the
players and images are; a section per clip with its signals side by side (people decide
by listening and looking first); the score tables (mean ± standard error over clips per
category and system, then APCodec against each Opus bitrate clip by clip: the mean
difference ± its standard error and on how many clips APCodec was better); the run's
settings.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import compare
from ..report import COLUMNS, Stat, Summary, format_stat
from . import media, png, spectrogram

PAGE = "index.html"
GENERATOR = "apcodec eval --report"  # the page's <meta name="generator">: marks a report
COLOUR_BAR = "colours.png"
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;
color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;
padding:.2em .6em}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}code{font-size:90%}
.signals{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px}
figure{margin:0}figcaption{font-size:13px;min-height:2.4em}
audio,figure img{width:100%;display:block}
figure img{margin-top:4px}.axis{font-size:12px;color:#555}
img.bar{width:256px;height:12px;image-rendering:pixelated;vertical-align:middle}
.note{background:#fff4d6;padding:.4em .8em;border-left:4px solid #e0a000}
"""
_NAMES = {key: header for key, header, _ in COLUMNS}
_DECIMALS = {key: decimals for key, _, decimals in COLUMNS}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    """An HTML table; cells from column `numeric_from` on are right-aligned numbers."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td{' class=n' if i >= numeric_from else ''}>{_e(c)}</td>"
        for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>\n"


def _means(systems: Mapping[str, Mapping[str, Stat]]) -> str:
    """Mean ± standard error per system (rows) and measured metric (columns)."""
    clips = max(stats["kbps"].n for stats in systems.values())
    keys = [k for k, _, _ in COLUMNS if any(stats[k].n for stats in systems.values())]
    return _table(["system"] + [_NAMES[k] for k in keys],
                  ([system] + [format_stat(stats[k], _DECIMALS[k], clips) for k in keys]
                   for system, stats in systems.items()))


def _paired(rows: Sequence[Mapping[str, Any]], category: str, opus: str) -> str:
    """APCodec against one Opus system, clip by clip: difference ± SE, clips better."""
    label = f"apcodec vs {opus}"
    ours = [r for r in rows if r["category"] == category]
    records = compare.compare(compare.by_clip(ours, opus, label),
                              compare.by_clip(ours, "apcodec", label))
    lines = []
    for r in records:
        d = _DECIMALS[r["metric"]]
        lines.append([_NAMES[r["metric"]], f"{r['candidate']:.{d}f}", f"{r['baseline']:.{d}f}",
                      f"{r['difference']:+.{d}f} ± {r['se']:.{d}f}" if r["clips"] > 1
                      else f"{r['difference']:+.{d}f}",
                      f"{r['clips']} pooled" if r["better"] is None
                      else f"{r['better']} of {r['clips']}"])
    return (f"<p>APCodec against <b>{_e(opus)}</b>, paired clip by clip (level: better is "
            f"nearer 0 dB):</p>\n" + _table(["metric", "apcodec", opus, "difference ± SE",
                                            "apcodec better on"], lines))


def _scores(summary: Summary, rows: Sequence[Mapping[str, Any]]) -> str:
    parts = ["<h2>Scores</h2>\n<p>Mean ± standard error over clips; ↑ higher is better, "
             "↓ lower is better; kbit/s measured from the size of each coded file.</p>\n"]
    for category, systems in summary.items():
        clips = max(stats["kbps"].n for stats in systems.values())
        parts.append(f"<h3>{_e(category)} ({clips} clip{'s' if clips != 1 else ''})</h3>\n"
                     + _means(systems))
        parts += [_paired(rows, category, s) for s in systems if s.startswith("opus-")]
    return "".join(parts)


def _caption(signal: str, clip_rows: Mapping[str, Mapping[str, Any]]) -> str:
    """A signal's name, then its bitrate and scores on this clip ('the reference')."""
    row = clip_rows.get(signal)
    if row is None:
        return f"<b>{_e(signal)}</b><br>the reference"
    scores = [f"{_NAMES[k]} {row[k]:.{_DECIMALS[k]}f}" for k in ("visqol", "pesq")
              if isinstance(row.get(k), (int, float)) and row[k] == row[k]]
    return f"<b>{_e(signal)}</b><br>" + _e(" · ".join([f"{row['kbps']:.2f} kbit/s"] + scores))


def _figure(signal: str, folder: str, seconds: float,
            clip_rows: Mapping[str, Mapping[str, Any]]) -> str:
    """One signal of a clip: caption, player, then an image a view, each with its band."""
    names = media.file_names(signal)
    parts = [f"<figure><figcaption>{_caption(signal, clip_rows)}</figcaption>\n"
             f"<audio controls preload=metadata src=\"{_e(folder)}/{_e(names['audio'])}\">"
             f"</audio>\n"]
    for view in spectrogram.VIEWS:
        band = f"0–{view.max_hz / 1000:g} kHz"
        label = f"{band}, 0–{seconds:g} s" if view is spectrogram.FULL else f"zoom: {band}"
        parts.append(f"<img src=\"{_e(folder)}/{_e(names[view.name])}\" "
                     f"alt=\"{_e(signal)}: spectrogram {band}\"><div class=axis>{label}</div>\n")
    return "".join(parts) + "</figure>\n"


def _clip(report: Path, clip: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> str:
    """One clip's section: its signals side by side, on the clip's colour scale."""
    folder = media.clip_folder(clip["name"], clip["path"])
    index = json.loads((report / folder / media.INDEX).read_text())
    clip_rows = {r["system"]: r for r in rows if r.get("path") == clip["path"]}
    figures = "".join(_figure(signal, folder, index["seconds"], clip_rows)
                      for signal in index["signals"])
    low = index["top_db"] - index["range_db"]
    return (f"<section><h3>{_e(index['name'])}</h3>\n<p class=axis>{_e(index['category'])}, "
            f"{index['seconds']:g} s; colours from {low:g} dB (dark) to {index['top_db']:g} dB "
            f"(bright), the same for every image of this clip.</p>\n"
            f"<div class=signals>\n{figures}</div></section>\n")


def _intro(clips: int, listened: Sequence[str], opus_note: str | None) -> str:
    note = f"<p class=note>{_e(opus_note)}</p>\n" if opus_note else ""
    return (f"<p>{clips} clip{'s' if clips != 1 else ''}, each as the source and as "
            f"{_e(' and '.join(listened))} decoded it. The players hold "
            f"<b>{_e(media.AUDIO_FORMAT)}</b>: the very signals that were scored, rounded "
            f"to 16 bits (clipped at full scale). Spectrograms: time left to right, frequency upwards, level in dB "
            f"of a full-scale sine <img class=bar src=\"{COLOUR_BAR}\" alt=\"colour scale\"> "
            f"over {spectrogram.RANGE_DB:g} dB, one scale per clip.</p>\n{note}")


def write_page(folder: str | Path, clips: Sequence[Mapping[str, str]],
               rows: Sequence[Mapping[str, Any]], summary: Summary,
               settings: Sequence[tuple[str, str]], listened: Sequence[str],
               opus_note: str | None = None) -> Path:
    """Write `index.html` and the colour bar into a report folder; returns the page.

    Args:
        folder: The report's folder, where `media.write_clip` wrote every clip.
        clips: "name" and "path" of each clip, in the order of the page.
        rows: The run's rows (one per clip and system).
        summary: `report.summarize(rows)`.
        settings: (label, value) lines of the settings table.
        listened: The systems whose decoding the clips hold, after the source.
        opus_note: A notice shown at the top (Opus was not run, say).
    """
    folder = Path(folder)
    bar = np.arange(media.COLOURS, dtype=np.uint8)[None, :]
    (folder / COLOUR_BAR).write_bytes(
        png.encode_palette_png(bar, spectrogram.palette(media.COLOURS)))
    sections = [_clip(folder, clip, rows) for clip in clips]
    text = (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>\n"
            f"<meta name=generator content=\"{GENERATOR}\">\n"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\">\n"
            f"<title>apcodec listening report</title><style>{_STYLE}</style></head><body>\n"
            f"<h1>apcodec listening report</h1>\n{_intro(len(clips), listened, opus_note)}"
            f"<h2>Clips</h2>\n{''.join(sections)}{_scores(summary, rows)}"
            f"<h2>Settings</h2>\n{_table(['setting', 'value'], settings, numeric_from=2)}"
            f"</body></html>\n")
    page = folder / PAGE
    page.write_text(text, encoding="utf-8")
    return page

"""What the chunk layout costs in quality: the same clips coded with several layouts.

    python scripts/chunk_quality.py --weights weights/apcodec-r4-7aea9d63b2b27a9b.pt --data data/corpus \
        --layouts whole,150:16,50:16,25:16 --max-clips 16

Each layout is CHUNK:CONTEXT code frames (`whole`: one chunk the length of the clip, so
nothing is cut). Every clip is coded in memory with each layout (float32; the codes are the
ones `apcodec encode` would write with that layout) and scored with the metrics of
`apcodec eval`. Prints the mean of each metric per category and layout, and each layout's
paired difference (mean +- standard error over clips, as `scripts/compare_runs.py` gives it)
against the first one. Results are in docs/chunking.md.
"""

from __future__ import annotations

import math
from collections import defaultdict

import click
from tqdm import tqdm

from apcodec_cli.codec import Codec
from apcodec_cli.evaluate import metrics
from apcodec_cli.evaluate.report import mean_se
from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.models.weights import load
from apcodec_cli.runtime import set_threads
from apcodec_cli.units import SAMPLE_RATE


def _layouts(text: str) -> list[tuple[str, int | None, int]]:
    """[(label, chunk frames or None for whole, context frames)] from 'whole,150:16,...'."""
    out = []
    for item in text.split(","):
        if item == "whole":
            out.append((item, None, 0))
        else:
            chunk, context = (int(v) for v in item.split(":"))
            out.append((item, chunk, context))
    return out


@click.command()
@click.option("--weights", "weights_path", required=True, type=click.Path(exists=True))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--layouts", default="whole,150:16,50:16,25:16", show_default=True)
@click.option("--max-clips", default=16, show_default=True, help="Clips per category.")
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--threads", default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def main(weights_path: str, data: str, layouts: str, max_clips: int, seconds: float,
         threads: int, quiet: bool) -> None:
    set_threads(threads)
    loaded = load(weights_path)
    spf = loaded.model.config.samples_per_frame
    plan = _layouts(layouts)
    clips = collect_clips(data, None, max_clips)
    # scores[layout][category][metric] -> list over clips (same clip order in every layout)
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for clip in tqdm(clips, unit="clip", disable=quiet):
        wav = load_clip(clip.path, seconds)
        speech = clip.category == "speech"
        for label, chunk, context in plan:
            codec = Codec(loaded, chunk_frames=chunk or math.ceil(len(wav) / spf),
                          context_frames=context)
            decoded = codec.decode(codec.encode(wav))[0, : len(wav)]
            for name, value in metrics.score(wav, decoded, SAMPLE_RATE, speech).items():
                scores[label][clip.category][name].append(value)
    first = plan[0][0]
    for category in sorted({c.category for c in clips}):
        names = list(scores[first][category])
        click.echo(f"\n{category} ({len(scores[first][category][names[0]])} clips), "
                   f"paired differences against {first}\n")
        click.echo("| layout | " + " | ".join(names) + " |")
        click.echo("|---|" + "---:|" * len(names))
        for label, _, _ in plan:
            cells = []
            for name in names:
                values = scores[label][category][name]
                cell = f"{mean_se(values).mean:.3f}"
                if label != first:
                    d = mean_se(v - b for v, b in zip(values, scores[first][category][name]))
                    cell += f" ({d.mean:+.3f} ± {d.se:.3f})"
                cells.append(cell)
            click.echo(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

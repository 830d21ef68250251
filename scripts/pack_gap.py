"""Does the model fit the audio it trained on better than audio it never saw?

    python scripts/pack_gap.py --weights weights/apcodec.pt --data data/corpus --pack data/pack

The CPU runs train on a pack (`data/pack`) that holds about 0.6 h per category, a small
part of the corpus's training split (20 h of music, 6.6 h of speech). If the model had
learnt those clips rather than music and speech in general, it would code them better than
other clips. For each category this draws `--windows` random 2 s windows from three sets
of corpus segments: in the pack; in the training split but not in the pack; the
validation split. It prints the mean squared error of the decoded log-amplitude against the
source's (the training loss's amplitude term, whole-window float32 passes) with its
standard error. Windows quieter than -60 dBFS are skipped. Results (2026-12-05):
`git show ad876bf:docs/training.md`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import click
import numpy as np
import soundfile as sf
import torch

from apcodec_cli.io.weights import load, set_threads
from apcodec_cli.nn import spectral
from apcodec_cli.units import SAMPLE_RATE


def segment_sets(data: Path, pack: Path, category: str, seconds: float) -> dict[str, list[str]]:
    """Corpus segment paths (relative to `data`) of `category`, at least `seconds` long,
    in three sets: in the pack, training split but not in the pack, validation split."""
    index = json.loads((pack / "index.json").read_text())
    in_pack = {s["segment"] for s in index["segments"] if s["category"] == category}
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["category"] == category and r["duration"] >= seconds]
    train = {r["path"] for r in mine if r["split"] == "train"}
    validation = {r["path"] for r in mine if r["split"] == "validation"}
    return {"in the pack": sorted(train & in_pack), "train, not in the pack": sorted(train - in_pack),
            "validation": sorted(validation)}


@click.command()
@click.option("--weights", "weights_path", required=True, type=click.Path(exists=True))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="The corpus folder (its manifest.jsonl).")
@click.option("--pack", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--windows", default=120, show_default=True, help="Windows per set.")
@click.option("--seed", default=1, show_default=True)
@click.option("--threads", default=2, show_default=True)
def main(weights_path: str, data: str, pack: str, windows: int, seed: int, threads: int) -> None:
    set_threads(threads)
    model = load(weights_path).model.float().eval()
    config = model.config
    length = 2 * SAMPLE_RATE
    print("| category | segments | windows | log-amplitude MSE |")
    print("|---|---|---:|---:|")
    for category in ("music", "speech"):
        for name, paths in segment_sets(Path(data), Path(pack), category, 2.5).items():
            rng = random.Random(seed)
            errors = []
            for path in rng.sample(paths, min(windows, len(paths))):
                audio, _ = sf.read(Path(data) / path, dtype="float32", always_2d=True)
                audio = audio.mean(axis=1)
                start = rng.randrange(0, len(audio) - length + 1)
                audio = audio[start: start + length]
                if np.sqrt(np.mean(audio ** 2)) < 1e-3:
                    continue
                wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
                with torch.inference_mode():
                    log_amp, _ = spectral.analyse(wav, config)
                    decoded = model(wav).log_amp  # encode, quantize, decode
                errors.append(float((decoded - log_amp).square().mean()))
            e = np.array(errors)
            print(f"| {category} | {name} | {len(e)} | {e.mean():.3f} ± "
                  f"{e.std(ddof=1) / np.sqrt(len(e)):.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Measure training speed: steps per second of a preset, with and without discriminators.

    python scripts/train_speed.py --preset cpu --set batch_size=16 --steps 5

Prints one JSON line per measurement. Batches are random noise of the preset's shape, so
only the compute is measured (the data pipeline is not).
"""

from __future__ import annotations

import json
import resource
import time

import click
import torch

from apcodec_cli.runtime import set_threads
from apcodec_cli.units import SAMPLE_RATE
from apcodec_cli.train.cli import parse_assignments
from apcodec_cli.train.config import get_train_preset
from apcodec_cli.train.distributed import Process
from apcodec_cli.train.trainer import Trainer


def measure(trainer: Trainer, wav: torch.Tensor, steps: int, warmup: int) -> float:
    """Steps per second of `trainer` on a fixed batch, after `warmup` untimed steps."""
    for _ in range(warmup):
        trainer.step(wav)
    sync = torch.cuda.synchronize if wav.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(wav)
    sync()
    return steps / (time.perf_counter() - start)


@click.command()
@click.option("--preset", default="reference")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--steps", type=click.IntRange(min=1), default=5)
@click.option("--warmup", type=click.IntRange(min=0), default=2)
@click.option("--device", default="cpu")
@click.option("--threads", type=click.IntRange(min=0), default=0)
@click.option("--mode", type=click.Choice(["both", "no_gan", "gan"]), default="both",
              help="Measure without discriminators, with them, or both.")
def main(preset: str, overrides: tuple[str, ...], steps: int, warmup: int, device: str,
         threads: int, mode: str) -> None:
    """Print steps/s of PRESET with discriminators ("gan") and without ("no_gan")."""
    set_threads(threads)
    config = get_train_preset(preset).override(parse_assignments(overrides))
    wav = 0.1 * torch.randn(config.batch_size, 1, config.segment, device=device)
    for name, gan_start in (("no_gan", 10**9), ("gan", 0)):
        if mode not in ("both", name):
            continue
        trainer = Trainer(config.override({"gan_start": str(gan_start)}),
                          Process(0, 1, torch.device(device)))
        start = time.perf_counter()
        rate = measure(trainer, wav, steps, warmup)
        total = time.perf_counter() - start
        codec = sum(p.numel() for p in trainer.codec.parameters())
        disc = sum(p.numel() for p in trainer.disc.parameters())
        click.echo(json.dumps({
            "preset": preset, "overrides": list(overrides), "mode": name,
            "device": device, "threads": torch.get_num_threads(),
            "batch": config.batch_size, "segment": config.segment,
            "codec_params_m": round(codec / 1e6, 2), "disc_params_m": round(disc / 1e6, 2),
            "steps_per_s": round(rate, 4),
            "warmup_s": round(total - steps / rate, 1),
            "audio_s_per_s": round(rate * config.batch_size * config.segment / SAMPLE_RATE, 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


if __name__ == "__main__":
    main()

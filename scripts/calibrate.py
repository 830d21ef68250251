"""Level calibration of trained weights: one offset per frequency bin on the decoded
log-amplitude, so that decoded audio carries its source's energy (why and how:
`apcodec_cli/train/calibrate.py`). Writes a new weights file; the codes do not change.

    python scripts/calibrate.py --weights IN.pt --data data/corpus --out OUT.pt
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import click
import numpy as np

from apcodec_cli.models import weights
from apcodec_cli.runtime import set_threads
from apcodec_cli.train.calibrate import calibrate, pick_windows
from apcodec_cli.train.data import find_clips


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--weights", "source", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Weights to calibrate.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus or audio folder; only its training split is used.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Calibrated weights file to write.")
@click.option("--clips", default=96, show_default=True, help="Training windows measured.")
@click.option("--seconds", default=4.0, show_default=True, help="Length of each window.")
@click.option("--shortest", default=1.0, show_default=True,
              help="Shorter clips, down to this many seconds, count as whole windows.")
@click.option("--threads", default=0, help="torch threads (0: default).")
@click.option("-f", "--force", is_flag=True, help="Overwrite --out.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(source: str, data: str, out: str, clips: int, seconds: float, shortest: float,
         threads: int, force: bool, quiet: bool) -> None:
    """Calibrate the decoded level of a weights file (see apcodec_cli/train/calibrate.py)."""
    if os.path.exists(out) and not force:
        raise click.UsageError(f"{out} exists (use --force to overwrite)")
    set_threads(threads)
    loaded = weights.load(source)
    model = loaded.model
    hop = model.config.samples_per_frame
    samples = int(seconds * model.config.sample_rate) // hop * hop
    windows = pick_windows(find_clips(data), clips, samples,
                           shortest=int(shortest * model.config.sample_rate), multiple=hop)
    delta = calibrate(model, windows, quiet=quiet)
    db = delta * 20 / math.log(10)
    info = {**loaded.info, "calibrated_from": loaded.fingerprint.hex(),
            "calibration_windows": len(windows)}
    # The codes do not change, so neither do their tables: the file keeps them.
    fp = weights.save(Path(out), model, trained=loaded.trained, code_tables=loaded.code_tables,
                      tables_info=loaded.tables_info,
                      **{k: v for k, v in info.items() if k != "trained"})
    bands = np.array_split(db.numpy(), 4)
    click.echo(f"{out}: fingerprint {fp.hex()}; offset per bin {db.mean():+.2f} dB mean "
               f"(quarters of the band: {', '.join(f'{b.mean():+.2f}' for b in bands)} dB)")


if __name__ == "__main__":
    main()

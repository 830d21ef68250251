"""What the causal GRN costs: the full model with its GRNs pooling a causal window instead of
the whole signal, weights unchanged.

    python scripts/grn_window.py --weights weights/apcodec-r1-750a8b1b89c5a49f.pt --data data/corpus

GRN (ConvNeXt v2) divides each channel's energy over *all* frames by the mean over channels;
the streamable model (apcodec_cli/nn/grn.py) pools over the last `grn_window` frames only.
This swaps every GRN of a trained non-causal model for the causal one at several window
lengths (everything else stays non-causal) and scores validation clips whole, so the
difference is the statistic alone, before any training adapts to it. Prints a markdown table
of log-spectral distance and log-mel L1 (lower is better).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from apcodec_cli.io import weights
from apcodec_cli.nn.grn import GRN, CausalGRN
from apcodec_cli.train.data import find_clips
from apcodec_cli.train.validation import load_validation, validate


def with_causal_grn(model: torch.nn.Module, window: int) -> torch.nn.Module:
    """The same model with every GRN pooling the last `window` frames (same parameters)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is GRN:
                causal = CausalGRN(child.gamma.shape[-1], window, child.eps)
                causal.load_state_dict(child.state_dict())
                setattr(module, name, causal)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/apcodec-r1-750a8b1b89c5a49f.pt")
    parser.add_argument("--data", type=Path, required=True, help="corpus (validation split)")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--windows", default="50,100,200,400,1600")
    args = parser.parse_args()
    weights.set_threads(1)
    config = weights.load(args.weights).model.config
    wavs = load_validation(find_clips(args.data), args.clips, args.seconds,
                           config.samples_per_frame)
    print(f"{len(wavs)} validation clips of up to {args.seconds:g} s, weights {args.weights}\n")
    print("| GRN statistic | LSD dB | log-mel L1 |\n|---|---:|---:|")
    rows = [("whole signal (as trained)", None)] + [
        (f"last {w} frames ({1000 * w * config.hop_length / config.sample_rate:.0f} ms), causal",
         w) for w in map(int, args.windows.split(","))]
    for label, window in rows:
        model = weights.load(args.weights).model
        if window:
            with_causal_grn(model, window)
        result = validate(model, wavs, torch.device("cpu"))
        print(f"| {label} | {result.lsd_db:.2f} | {result.mel_l1:.3f} |")


if __name__ == "__main__":
    main()

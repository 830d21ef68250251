"""The baseline: a plain whole-signal forward pass of the reference configuration.

`python -m apcodec_cli.bench.baseline --seconds 60 --threads 2` builds
`APCodec(get_preset("apcodec-48k")).eval()` with random weights (they cost the same time
and memory as trained ones), then encodes and decodes the whole signal in one call each,
under `torch.inference_mode`, and prints one JSON line: the timed seconds of encode and
decode (construction and imports excluded). Run as its own process so that its peak
memory is measured alone.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--preset", default="apcodec-48k")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import torch

    from ..runtime import set_threads
    from ..nn.config import get_preset
    from ..nn.model import APCodec
    from ..units import ceil_div

    set_threads(args.threads)
    torch.manual_seed(0)
    model = APCodec(get_preset(args.preset)).eval().to(args.device)
    spf = model.config.samples_per_frame
    n = ceil_div(round(args.seconds * model.config.sample_rate), spf) * spf
    rng = np.random.default_rng(0)
    t = np.arange(n) / model.config.sample_rate
    wav = (0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    wav = torch.from_numpy(wav).reshape(1, 1, n).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        start = time.perf_counter()
        codes = model.encode(wav)
        sync()
        encode = time.perf_counter() - start
        start = time.perf_counter()
        model.decode(codes)
        sync()
        decode = time.perf_counter() - start
    print(json.dumps({"preset": args.preset, "seconds": n / model.config.sample_rate,
                      "threads": torch.get_num_threads(), "encode_s": encode,
                      "decode_s": decode}))


if __name__ == "__main__":
    main()

"""Evaluation of a weights file: objective metrics of APCodec and Opus on held-out audio.

`apcodec eval` codes each clip with APCodec (real `.apc` files) and with Opus at 6 and
12 kbit/s, scores every result against the original and prints one markdown table per
category. The metrics need the `eval` extra (``pip install 'apcodec[eval]'``) and Opus needs
Debian's opus-tools. Encode and decode import nothing from here; training's validation and
losses and the quality check of data packs (`packs.py`) take their measures from
`metrics.py`. The maintainer tools built on it (diagnostics, paired comparisons) are in
`scripts/`.
"""

"""What touches files: the `.apc` format, the live record format, audio, weights, atomic writes.

`bitstream` and `audio` import no torch.
"""

"""The `.apc` file format and everything else that is bytes on disk or in a pipe.

The bottom layer above the base: the header, chunks, bit packing and range coding of `.apc`
files (specified in docs/format.md and at the top of each module), the live record format
of real-time pipes, WAV streams, audio files (soundfile, soxr) and atomic writes. numpy,
struct, soundfile, soxr and constriction only: no module here imports torch, nor any layer
above (tests/test_layers.py checks both).
"""

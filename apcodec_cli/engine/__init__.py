"""Engines that run the model over whole signals: chunked windows, streams, shared passes.

Built on `nn/` only: no files, no formats, no command line.
"""

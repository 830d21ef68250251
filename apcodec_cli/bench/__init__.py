"""`apcodec bench`: speed and peak memory of whole encode/decode processes, against Opus,
the compute floor of the model and a plain whole-signal forward pass of the reference model.

`cli.py` imports only click (the command is registered with every `apcodec` run); the work
is in `run.py` (measurements), `floor.py` (FLOP count and matmul throughput, in-process) and
`baseline.py` (the reference forward pass, run as its own process).
"""

"""Training of APCodec: corpus and data packs, losses, discriminators, the training loop.

Never imported by encode/decode; `apcodec train` loads it on demand.
"""

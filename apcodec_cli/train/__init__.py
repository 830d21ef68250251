"""Training-side tools of APCodec: corpus building and data packs."""

"""Trained models as files: weights files (safe loading, fingerprints, code-tables files)
and the releases installed with the package (which file a `.apc` header needs).

Above `nn/`, whose networks it fills, and below the engine and the codec, which run them.
torch loads with `weights.py`; `releases.py` imports it only to open a file it cannot name.
"""

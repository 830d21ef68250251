"""The training corpus builder: sources, manifests, splits, packs (`scripts/build_corpus.py`).

Imported by training and evaluation, never by encode/decode.
"""

"""The listening report of `apcodec eval --report DIR`: a static HTML page with each clip's
players and spectrograms, the score tables and the run's settings.

    media.py        a clip's files: 16-bit FLAC of every signal, spectrogram PNGs, clip.json
    spectrogram.py  spectrogram images in numpy, one colour scale per clip
    png.py          the PNG encoder (zlib and struct)
    page.py         index.html over those files
    folder.py       the folder, written beside its target and renamed into place

Only `apcodec eval --report` imports this package.
"""

"""What a `.apc` header may claim: the one check that `apcodec info` and every decode run.

A header's CRC only proves that the header was not damaged by accident; a crafted one can
claim anything the format's fields hold (1024 channels, a 1 Hz codec rate, 16-bit codes,
eight codebooks). So before anything is sized from a header, `check_decodable` compares it
with what the models of this package can have made (the geometry of the preset it names,
or of the model loaded to decode it) and with the lengths its rates imply. `info` reports
a file that fails as unreadable, and decode refuses it, with the same message.

No torch: the presets are plain data.
"""

from __future__ import annotations

from ..nn.config import PRESETS, CodecConfig
from ..units import MAX_SOURCE_RATE, MIN_SOURCE_RATE, resampled_length
from ..format.header import Header, HeaderError

_GEOMETRY = ("sample_rate", "samples_per_frame", "n_codebooks", "bits_per_code")


def _geometry(config: CodecConfig) -> tuple[int, ...]:
    return tuple(getattr(config, name) for name in _GEOMETRY)


#: Code geometries (rate, samples per frame, codebooks, bits) of every preset.
KNOWN_GEOMETRIES = frozenset(_geometry(c) for c in PRESETS.values())


def check_decodable(header: Header, config: CodecConfig | None = None) -> None:
    """Raise HeaderError unless a model of this package can decode what `header` claims.

    Args:
        header: A file's header (a live stream's: lengths once known, else 0).
        config: The model that will decode it; None (`info`): the preset the header
            names, else any preset's geometry.

    Raises:
        HeaderError: In one line, naming the field and what was expected.
    """
    claimed = tuple(getattr(header, name) for name in _GEOMETRY)
    if config is None and header.model_name in PRESETS:
        config = PRESETS[header.model_name]
    allowed = {_geometry(config)} if config is not None else KNOWN_GEOMETRIES
    if claimed not in allowed:
        want = ", ".join(f"{n}={v}" for n, v in zip(_GEOMETRY, sorted(allowed)[0]))
        got = ", ".join(f"{n}={v}" for n, v in zip(_GEOMETRY, claimed))
        raise HeaderError(f"the header claims codes no model here makes ({got}; "
                          f"{header.model_name!r} makes {want}): damaged or crafted")
    if config is not None and header.streamable != config.causal:
        kind = "streamable" if header.streamable else "full"
        raise HeaderError(f"the header says the {kind} model made the codes, but "
                          f"{config.name!r} is not that model")
    if not MIN_SOURCE_RATE <= header.source_sample_rate <= MAX_SOURCE_RATE:
        raise HeaderError(f"the header's source rate {header.source_sample_rate} Hz is outside "
                          f"{MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz: damaged or crafted")
    expected = resampled_length(header.source_length, header.source_sample_rate,
                                header.sample_rate)
    # Files hold exactly `expected`; a live stream's streaming resampler may differ by a
    # few samples. What matters is that no length is sized from a rate a header made up.
    if not header.live and abs(header.coded_length - expected) > 16 + expected // 1000:
        raise HeaderError(f"the header's lengths disagree: {header.source_length} samples at "
                          f"{header.source_sample_rate} Hz are about {expected} at "
                          f"{header.sample_rate} Hz, not {header.coded_length}")

"""Hyper-parameters of the codec: one frozen dataclass and its named presets.

Everything that decides the shape of the network or the bitstream lives here. Derived
quantities (frame rates, bits per code, bitrate) are properties, never stored twice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from ..units import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Configuration of one APCodec model.

    Attributes:
        name: Preset name, written into every `.apc` header.
        sample_rate: Rate the model codes at, in Hz.
        n_fft: FFT size of the STFT front end (n_fft // 2 + 1 frequency bins).
        hop_length: STFT hop in samples.
        win_length: Hann window length in samples.
        dim: Channel width of the ConvNeXt v2 stacks.
        hidden_dim: Width of the point-wise feed-forward layer inside each block.
        n_blocks: ConvNeXt v2 blocks per branch, encoder and decoder alike.
        kernel_size: Kernel of the depthwise and frame-level convolutions.
        downsample: STFT frames per latent frame (stride of the encoder's last conv).
        encoder_out_dim: Channels each encoder branch hands to the fusion layer.
        latent_dim: Dimension of the latent that the quantizer codes.
        n_codebooks: Residual VQ stages.
        codebook_size: Entries per codebook (a power of two).
        codebook_dim: Dimension of the factorised code space of each stage.
        causal: Streamable model (APCodec-S): causal layers only, no look-ahead, coded
            frame by frame by `stream.py` (see `causal.py`).
        grn_window: Frames the causal GRN pools its statistics over (causal models only).
    """

    name: str = "apcodec-48k"
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 40
    win_length: int = 320
    dim: int = 256
    hidden_dim: int = 512
    n_blocks: int = 8
    kernel_size: int = 7
    downsample: int = 8
    encoder_out_dim: int = 128
    latent_dim: int = 32
    n_codebooks: int = 4
    codebook_size: int = 1024
    codebook_dim: int = 32
    causal: bool = False
    grn_window: int = 200

    def __post_init__(self) -> None:
        if self.codebook_size < 2 or self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"codebook_size must be a power of two, got {self.codebook_size}")
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{field.name} must be a positive integer, got {value!r}")
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be true or false, got {self.causal!r}")

    @property
    def n_bins(self) -> int:
        """Frequency bins of the one-sided spectrum."""
        return self.n_fft // 2 + 1

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per latent (code) frame: 320 in the reference preset."""
        return self.hop_length * self.downsample

    @property
    def frame_rate(self) -> float:
        """Latent frames per second: 150 in the reference preset."""
        return self.sample_rate / self.samples_per_frame

    @property
    def bits_per_code(self) -> int:
        """Bits needed for one codebook index: 10 for 1024 entries."""
        return int(math.log2(self.codebook_size))

    @property
    def bitrate(self) -> float:
        """Nominal bitrate of the codes in bit/s for one channel: 6000 for the reference."""
        return self.frame_rate * self.n_codebooks * self.bits_per_code

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields, for saving alongside weights."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CodecConfig":
        """Build a config from a dict; unknown keys are an error, missing keys take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "CodecConfig":
        """Copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)


#: Named presets. The reference one matches the published configuration.
PRESETS: dict[str, CodecConfig] = {
    "apcodec-48k": CodecConfig(),
    # Half the width and half the depth (4.5 M parameters), same bitrate and bitstream: the
    # model that trains at a useful pace on a CPU (see apcodec_cli/train/config.py).
    "apcodec-48k-small": CodecConfig(
        name="apcodec-48k-small", dim=128, hidden_dim=256, n_blocks=4, encoder_out_dim=64
    ),
    # The streamable variants (APCodec-S): the same shapes made causal, so a non-causal
    # model's weights initialise them (see apcodec_cli/train/distill.py).
    "apcodec-s-48k": CodecConfig(name="apcodec-s-48k", causal=True),
    "apcodec-s-48k-small": CodecConfig(
        name="apcodec-s-48k-small", dim=128, hidden_dim=256, n_blocks=4, encoder_out_dim=64,
        causal=True,
    ),
    # A very small model of the same structure, bitrate and bitstream: for tests and smoke runs.
    "tiny": CodecConfig(
        name="tiny", dim=16, hidden_dim=32, n_blocks=1, encoder_out_dim=8, codebook_dim=8
    ),
    "tiny-s": CodecConfig(
        name="tiny-s", dim=16, hidden_dim=32, n_blocks=1, encoder_out_dim=8, codebook_dim=8,
        causal=True, grn_window=24,
    ),
}


def get_preset(name: str) -> CodecConfig:
    """Return the preset called `name`, with a helpful error listing the others."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None

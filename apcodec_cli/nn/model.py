"""APCodec: parallel amplitude/phase encoder, residual VQ, parallel decoder, inverse STFT.

Shapes: waveforms (B, 1, T) with T a multiple of `config.samples_per_frame`; spectra
(B, n_bins, F) with F = T / hop_length; latents (B, latent_dim, N) with N = F / downsample;
codes (B, n_codebooks, N) int64.

With `config.causal` every layer is built causal (`causal.py`, the causal ConvNeXt v2 blocks
of `blocks.py`); such a model also codes streams frame by frame (`engine/stream.py`, which
runs it through `engine/streamnet.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import torch
from torch import nn

from . import spectral
from .blocks import ConvNeXtStack
from .causal import CausalConv1d, CausalDownsample, CausalUpsample
from .config import CodecConfig
from .quantizer import QuantizerOutput, ResidualVQ


def _conv(config: CodecConfig, c_in: int, c_out: int, stride: int = 1) -> nn.Conv1d:
    """Convolution that keeps the frame grid: 'same' padding, or an exact 1/stride length
    (causal: left padding only)."""
    k = config.kernel_size
    if config.causal:
        return CausalDownsample(c_in, c_out, k, stride) if stride > 1 else \
            CausalConv1d(c_in, c_out, k)
    return nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2)


def _upsample(config: CodecConfig) -> nn.ConvTranspose1d:
    """Transposed convolution giving exactly `downsample` frames per input frame."""
    c, s = config.dim, config.downsample
    if config.causal:
        return CausalUpsample(c, c, s)
    # kernel 2*stride with padding stride/2 gives exactly `stride` frames per input frame.
    return nn.ConvTranspose1d(c, c, 2 * s, stride=s, padding=s // 2)


def _stack(config: CodecConfig) -> ConvNeXtStack:
    c = config
    return ConvNeXtStack(c.dim, c.hidden_dim, c.n_blocks, c.kernel_size,
                         c.grn_window if c.causal else None)


def wrapped_phase(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """The phase head, in every form: the angle of the point that its two convolutions
    predict (real and imaginary part), in float32.

    The phase is the angle of a predicted point, so it is always wrapped and never has
    to be regressed across the -pi/pi discontinuity. Rounded to bf16, the angle would carry
    errors of about 0.01 rad: it is computed in float32 under autocast too.
    """
    return torch.atan2(imag.float(), real.float())


class EncoderBranch(nn.Module):
    """One encoder branch (amplitude or phase): spectra at F frames -> features at F/8."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c = config
        self.conv_in = _conv(c, c.n_bins, c.dim)
        self.stack = _stack(c)
        self.linear = nn.Linear(c.dim, c.dim)
        self.down = _conv(c, c.dim, c.encoder_out_dim, stride=c.downsample)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, n_bins, F) -> (B, encoder_out_dim, F / downsample)."""
        x = self.stack(self.conv_in(spec))
        x = self.linear(x.transpose(1, 2)).transpose(1, 2)  # Linear acts on the channel axis
        return self.down(x)


class Encoder(nn.Module):
    """Two parallel branches fused into one latent at the code frame rate."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.amplitude = EncoderBranch(config)
        self.phase = EncoderBranch(config)
        self.fuse = _conv(config, 2 * config.encoder_out_dim, config.latent_dim)

    def forward(self, log_amp: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(B, n_bins, F) twice -> latent (B, latent_dim, F / downsample)."""
        return self.fuse(torch.cat([self.amplitude(log_amp), self.phase(phase)], dim=1))


class DecoderBranch(nn.Module):
    """One decoder branch body: latent features at N frames -> features at 8N frames."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c = config
        self.up = _upsample(c)
        self.conv = _conv(c, c.dim, c.dim)
        self.stack = _stack(c)
        self.linear = nn.Linear(c.dim, c.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, N) -> (B, dim, N * downsample)."""
        x = self.stack(self.conv(self.up(x)))
        return self.linear(x.transpose(1, 2)).transpose(1, 2)  # Linear acts on channels


class Decoder(nn.Module):
    """Latent -> log-amplitude and phase spectra, decoded in parallel."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c = config
        self.conv_in = _conv(c, c.latent_dim, c.dim)
        self.amplitude = DecoderBranch(c)
        self.phase = DecoderBranch(c)
        self.amplitude_head = _conv(c, c.dim, c.n_bins)
        self.real_head = _conv(c, c.dim, c.n_bins)
        self.imag_head = _conv(c, c.dim, c.n_bins)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, latent_dim, N) -> log_amp, phase, each (B, n_bins, N * downsample)."""
        return self.heads(*self.branches(latent))

    def branches(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, latent_dim, N) -> amplitude and phase features, each (B, dim, N * downsample)."""
        x = self.conv_in(latent)
        return self.amplitude(x), self.phase(x)

    def heads(self, amp: torch.Tensor, pha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Branch features (B, dim, F) -> log_amp, phase, each (B, n_bins, F).

        Training runs the heads in float32 even under bf16 autocast (see
        train/trainer.py): rounded to bf16, the log-amplitude would carry errors of about
        0.03 (and the phase, see `wrapped_phase`).
        """
        return self.amplitude_head(amp), wrapped_phase(self.real_head(pha), self.imag_head(pha))


@dataclasses.dataclass
class CodecOutput:
    """Everything a training step needs from one forward pass.

    Attributes:
        log_amp: (B, n_bins, F) decoded log-amplitude spectrum.
        phase: (B, n_bins, F) decoded wrapped phase spectrum.
        wav: (B, 1, T) re-synthesised waveform.
        quantized: The quantizer's output (codes and losses).
        encoded: (B, latent_dim, N) the encoder's output before quantization.
    """

    log_amp: torch.Tensor
    phase: torch.Tensor
    wav: torch.Tensor
    quantized: QuantizerOutput
    encoded: torch.Tensor | None = None


class APCodec(nn.Module):
    """The whole codec: `encode(wav) -> codes`, `decode(codes) -> wav`."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = ResidualVQ(
            config.latent_dim, config.n_codebooks, config.codebook_size, config.codebook_dim
        )
        self.decoder = Decoder(config)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Codes (B, n_codebooks, T / samples_per_frame) of a waveform (B, 1, T)."""
        return self.quantizer.encode(self.encoder(*spectral.analyse(wav, self.config)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Waveform (B, 1, N * samples_per_frame) of codes (B, n_codebooks, N)."""
        log_amp, phase = self.decoder(self.quantizer.decode(codes))
        return spectral.synthesise(log_amp, phase, self.config)

    def forward(self, wav: torch.Tensor) -> CodecOutput:
        """Training pass: encode, quantize with losses, decode, re-synthesise."""
        encoded = self.encoder(*spectral.analyse(wav, self.config))
        quantized = self.quantizer(encoded)
        log_amp, phase = self.decoder(quantized.latent)
        wav_hat = spectral.synthesise(log_amp, phase, self.config)
        return CodecOutput(log_amp, phase, wav_hat, quantized, encoded)

    def weight_norm_layers(self) -> Iterator[nn.Module]:
        """The stride, fusion and head convolutions that train with weight normalisation."""
        for branch in (self.encoder.amplitude, self.encoder.phase):
            yield branch.down
        yield self.encoder.fuse
        yield self.decoder.conv_in
        for branch in (self.decoder.amplitude, self.decoder.phase):
            yield branch.up
        yield from (self.decoder.amplitude_head, self.decoder.real_head, self.decoder.imag_head)

"""STFT front end and back end: waveform <-> (log-amplitude, phase) spectra.

Framing convention: a waveform of `n * samples_per_frame` samples gives exactly
`n * downsample` STFT frames. The STFT is centred (frame f is centred on sample
`f * hop_length`, zero padding at the edges); the one extra frame a centred STFT yields,
centred on the first sample *after* the signal, is dropped, and the inverse STFT still
reconstructs every sample because the hop (40) is far below the window (320).
"""

from __future__ import annotations

import torch

from .config import CodecConfig

#: Floor added to magnitudes before the logarithm, as in the published recipe.
LOG_FLOOR = 1e-5
#: Ceiling on decoded log-amplitudes. A full-scale sine peaks near log(80) = 4.4 with this
#: window, so real audio never reaches it; it stops a diverging decoder from producing
#: overflowing spectra (and the exploding losses they cause in training).
LOG_AMP_MAX = 10.0


def _window(config: CodecConfig, device: torch.device) -> torch.Tensor:
    return torch.hann_window(config.win_length, device=device)


def stft(wav: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Complex spectrum of a batch of waveforms.

    Args:
        wav: (B, 1, T) waveform, T a multiple of `config.samples_per_frame`.

    Returns:
        (B, n_bins, T // hop_length) complex spectrum.
    """
    if wav.shape[-1] % config.samples_per_frame:
        raise ValueError(
            f"length {wav.shape[-1]} is not a multiple of {config.samples_per_frame} samples"
        )
    spec = torch.stft(
        wav.reshape(-1, wav.shape[-1]),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_window(config, wav.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec[..., :-1]  # drop the frame centred past the end (see module docstring)


def analyse(wav: torch.Tensor, config: CodecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-amplitude and wrapped phase spectra, the two encoder inputs.

    Args:
        wav: (B, 1, T) waveform, T a multiple of `config.samples_per_frame`.

    Returns:
        log_amp: (B, n_bins, F) natural log of (|X| + 1e-5).
        phase: (B, n_bins, F) angle of X in (-pi, pi].
    """
    spec = stft(wav, config)
    return torch.log(spec.abs() + LOG_FLOOR), torch.angle(spec)


def spectrum(log_amp: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Complex spectrum exp(log_amp) * e^{j phase}; shapes (B, n_bins, F)."""
    return torch.polar(torch.exp(log_amp.clamp(max=LOG_AMP_MAX)), phase)


def istft(spec: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Inverse of `stft`.

    Args:
        spec: (B, n_bins, F) complex spectrum, F a multiple of `config.downsample`.

    Returns:
        (B, 1, F * hop_length) waveform.
    """
    length = spec.shape[-1] * config.hop_length
    wav = torch.istft(
        spec,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_window(config, spec.device),
        center=True,
        length=length,
    )
    return wav.unsqueeze(1)


def synthesise(log_amp: torch.Tensor, phase: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Waveform from log-amplitude and phase spectra (B, n_bins, F) -> (B, 1, F * hop)."""
    return istft(spectrum(log_amp, phase), config)

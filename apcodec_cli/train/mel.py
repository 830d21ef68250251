"""Log-mel spectrogram of the mel losses, with a mel filterbank built here in torch.

The mel scale is Slaney's (linear below 1 kHz, logarithmic above) and every triangular
filter is normalised to unit area, the convention of the HiFi-GAN family of vocoders.
"""

from __future__ import annotations

import math

import torch

#: Published mel settings: 80 bands over the whole band of a 1024-point STFT, hop 40, win 320.
N_MELS = 80
N_FFT = 1024
HOP = 40
WIN = 320

_BREAK_HZ = 1000.0
_LINEAR_STEP = 200.0 / 3.0  # Hz per mel below the break
_LOG_STEP = math.log(6.4) / 27.0  # log-Hz per mel above the break
_BREAK_MEL = _BREAK_HZ / _LINEAR_STEP


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel of frequencies in Hz."""
    log_part = _BREAK_MEL + torch.log(hz.clamp(min=_BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return torch.where(hz < _BREAK_HZ, hz / _LINEAR_STEP, log_part)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_mel`."""
    log_part = _BREAK_HZ * torch.exp(_LOG_STEP * (mel.clamp(min=_BREAK_MEL) - _BREAK_MEL))
    return torch.where(mel < _BREAK_MEL, mel * _LINEAR_STEP, log_part)


def filterbank(sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS,
               f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """Triangular mel filters of unit area.

    Returns:
        (n_mels, n_fft // 2 + 1) weights mapping a magnitude spectrum to mel bands.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
                               hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
                               n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(edges_mel)  # (n_mels + 2,) lower edge, centre, upper edge per filter
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (high - low))  # unit area: wide high filters are not louder
    return weights.float()


class LogMel(torch.nn.Module):
    """log(max(mel magnitude, 1e-5)) of waveforms, in float32 whatever the autocast state."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.register_buffer("filters", filterbank(sample_rate), persistent=False)
        self.register_buffer("window", torch.hann_window(WIN), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) waveform -> (B, N_MELS, T // HOP + 1) log-mel spectrogram."""
        with torch.autocast(wav.device.type, enabled=False):
            spec = torch.stft(wav.float().reshape(-1, wav.shape[-1]), N_FFT, HOP, WIN,
                              window=self.window, center=True, pad_mode="constant",
                              return_complex=True)
            mel = torch.matmul(self.filters, spec.abs())
            return torch.log(mel.clamp(min=1e-5))

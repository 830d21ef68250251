"""Log-mel spectrogram of the mel losses: the differentiable torch twin of `evaluate.metrics`'s.

The filterbank and the framing are those of `evaluate/metrics.py` (`mel_filterbank`,
`MEL_*`): Slaney's mel scale (linear below 1 kHz, logarithmic above), every triangular
filter of unit area, the convention of the HiFi-GAN family of vocoders. Only the STFT and
the product run here, in torch, so that the losses have gradients and run on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluate.metrics import MEL_BANDS, MEL_FFT, MEL_FLOOR, MEL_HOP, MEL_WIN, mel_filterbank


class LogMel(torch.nn.Module):
    """log(max(mel magnitude, 1e-5)) of waveforms, in float32 whatever the autocast state."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        filters = torch.from_numpy(np.array(mel_filterbank(sample_rate), np.float32))
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("window", torch.hann_window(MEL_WIN), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) waveform -> (B, MEL_BANDS, T // MEL_HOP + 1) log-mel spectrogram."""
        with torch.autocast(wav.device.type, enabled=False):
            spec = torch.stft(wav.float().reshape(-1, wav.shape[-1]), MEL_FFT, MEL_HOP,
                              MEL_WIN, window=self.window, center=True, pad_mode="constant",
                              return_complex=True)
            mel = torch.matmul(self.filters, spec.abs())
            return torch.log(mel.clamp(min=MEL_FLOOR))

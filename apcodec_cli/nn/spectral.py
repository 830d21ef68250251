"""STFT front end and back end: waveform <-> (log-amplitude, phase) spectra.

Framing convention: a waveform of `n * samples_per_frame` samples gives exactly
`n * downsample` STFT frames. The STFT is centred (frame f is centred on sample
`f * hop_length`, zero padding at the edges); the one extra frame a centred STFT yields,
centred on the first sample *after* the signal, is dropped, and the inverse STFT still
reconstructs every sample because the hop (40) is far below the window (320).

Causal models (`config.causal`) frame differently: frame f *ends* at sample (f + 1) * hop
(it covers [(f + 1) * hop - win_length, (f + 1) * hop)), so a frame is known as soon as its
last hop of samples has arrived. Their inverse STFT is a plain overlap-add; its last
`win_length - hop_length` samples (280) still wait for frames that have not been decoded,
which is why a stream's output lags its input and why files made by a causal model carry
one extra code frame. `StreamAnalysis` and `StreamSynthesis` run the causal transforms
incrementally on a stream, with the same arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import CodecConfig

#: Floor added to magnitudes before the logarithm, as in the published recipe.
LOG_FLOOR = 1e-5
#: Ceiling on decoded log-amplitudes. A full-scale sine peaks near log(80) = 4.4 with this
#: window, so real audio never reaches it; it stops a diverging decoder from producing
#: overflowing spectra (and the exploding losses they cause in training).
LOG_AMP_MAX = 10.0


def _window(config: CodecConfig, device: torch.device) -> torch.Tensor:
    return torch.hann_window(config.win_length, device=device)


def _overlap_add_window(config: CodecConfig, device: torch.device) -> torch.Tensor:
    """The synthesis window of the causal overlap-add: the Hann window divided by its
    steady-state overlap (3 for 8 hops), so fully overlapped samples come back exact."""
    window = _window(config, device)
    return window / (window.square().sum() / config.hop_length)


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
    if config.causal:
        padded = F.pad(wav.reshape(-1, wav.shape[-1]), (causal_history(config), 0))
        return causal_frames(padded, config, _window(config, wav.device)).transpose(1, 2)
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
    if config.causal:
        return _overlap_add(spec, config)[..., causal_history(config):].unsqueeze(1)
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


# ---- causal framing --------------------------------------------------------------------


def causal_history(config: CodecConfig) -> int:
    """Samples before a causal frame's last hop (win_length - hop_length): zeros before the
    start of a signal, remembered by a stream."""
    return config.win_length - config.hop_length


def causal_frames(samples: torch.Tensor, config: CodecConfig,
                  window: torch.Tensor) -> torch.Tensor:
    """The causal framing, of whole signals (`stft`) and streams (`StreamAnalysis`) alike.

    Args:
        samples: (B, causal_history + n * hop + r) samples, r < hop: the history, then
            the hops of n frames (and r samples not yet framed, ignored).
        window: The analysis window (`_window`).

    Returns:
        (B, n, n_bins) complex, channels last: frame f ends with hop f, and its window sits
        where torch.stft puts it in the FFT frame (centred).
    """
    c = config
    frames = samples.unfold(-1, c.win_length, c.hop_length) * window  # (B, n, win)
    offset = (c.n_fft - c.win_length) // 2
    return torch.fft.rfft(F.pad(frames, (offset, c.n_fft - c.win_length - offset)), dim=-1)


def _overlap_add(spec: torch.Tensor, config: CodecConfig,
                 window: torch.Tensor | None = None) -> torch.Tensor:
    """Windowed overlap-add of F frames (B, n_bins, F): (B, (F - 1) * hop + win_length)
    samples, starting where the first frame starts. `window` is `_overlap_add_window`
    (computed when not given): a sample covered by every frame it should be is exact."""
    offset = (config.n_fft - config.win_length) // 2
    frames = torch.fft.irfft(spec, n=config.n_fft, dim=1)[:, offset:offset + config.win_length]
    if window is None:
        window = _overlap_add_window(config, spec.device)
    frames = frames * window.unsqueeze(-1)
    n = spec.shape[-1]
    length = (n - 1) * config.hop_length + config.win_length
    return F.fold(frames, output_size=(1, length), kernel_size=(1, config.win_length),
                  stride=(1, config.hop_length)).reshape(spec.shape[0], length)


class StreamAnalysis:
    """Causal STFT of a stream: samples in, log-amplitude and phase frames out.

    `push(samples)` takes (B, n) samples, any n, and returns the frames they complete,
    channels last: (B, frames, n_bins) each (the layout `streamnet.py` works in). The
    frames of `stft` (`causal_frames` both).
    """

    def __init__(self, config: CodecConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self._window = _window(config, torch.device(device))
        self._buffer: torch.Tensor | None = None  # history + samples not yet framed

    def push(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, history = self.config, causal_history(self.config)
        if self._buffer is None:
            self._buffer = samples.new_zeros(samples.shape[0], history)
        data = torch.cat([self._buffer, samples], dim=-1)
        n = (data.shape[-1] - history) // c.hop_length
        self._buffer = data[:, n * c.hop_length:]
        if not n:
            empty = samples.new_zeros(samples.shape[0], 0, c.n_bins)
            return empty, empty
        spec = causal_frames(data, c, self._window)  # (B, n, n_bins)
        return torch.log(spec.abs() + LOG_FLOOR), torch.angle(spec)


class StreamSynthesis:
    """Causal inverse STFT of a stream: spectral frames in, finished samples out.

    `push(log_amp, phase)` takes (B, n, n_bins) frames, channels last, and returns the
    samples no later frame can change: after F frames in all, samples
    [0, F * hop - (win - hop)). `flush()` returns the remaining win - hop samples as they
    stand (the end of a batch `istft`), for when no frame will follow. Each push is one
    `_overlap_add` of its frames plus the tail the previous push left open.
    """

    def __init__(self, config: CodecConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self._window = _overlap_add_window(config, torch.device(device))
        self._tail: torch.Tensor | None = None  # overlap-add of samples still open
        self._skip = causal_history(config)  # samples before time 0

    def push(self, log_amp: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        c = self.config
        overlap = causal_history(c)
        if self._tail is None:
            self._tail = log_amp.new_zeros(log_amp.shape[0], overlap)
        n = log_amp.shape[-2]
        if not n:
            return self._tail.new_zeros(self._tail.shape[0], 0)
        added = _overlap_add(spectrum(log_amp, phase).transpose(1, 2), c, self._window)
        added[:, :overlap] += self._tail
        done, self._tail = added[:, :n * c.hop_length], added[:, n * c.hop_length:]
        skip = min(self._skip, done.shape[-1])
        self._skip -= skip
        return done[:, skip:]

    def flush(self) -> torch.Tensor:
        tail = self._tail if self._tail is not None else torch.zeros(1, 0)
        tail, self._tail = tail[:, self._skip:], None
        return tail

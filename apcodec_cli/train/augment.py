"""Augmentation of training crops: what users' audio has that the corpus lacks.

The corpus is game music and a few read or acted voices, most of it through one recording
chain each; users bring other microphones, rooms, mixes and bandwidths. Each augmentation is
applied to a crop with its own probability (`config.Augment`, all 0 by default: off):

    eq          a spectral tilt of -3..+3 dB per octave around 1 kHz, plus one bell of
                -9..+9 dB, one octave wide, centred log-uniformly on 80 Hz..12 kHz
    band_limit  a low-pass at 3.4..20 kHz, log-uniform (telephone to nearly full band)
    mix         the batch's next crop added 0..15 dB below this one (speech over music,
                two voices, two instruments)
    noise       white or pink noise 20..50 dB below the crop
    reverb      a room: an exponentially decaying noise tail of RT60 0.1..0.8 s, 10..30 %
                wet (the crop is shorter than the tail: it holds the tail's first part)
    stretch     played 0..6 % slower (pitch and tempo down; crops are read at their
                length, so only the slower direction needs no extra audio)
    tones       a sine at 100 Hz..16 kHz (log-uniform), steady or gliding up to two
                octaves over the crop: alone in place of the crop, or added 0..20 dB below
                it (test tones and sweeps, whistles, synthesisers: the corpus has no pure
                tone, and release 2 lost 17 to 45 dB of sines at 1 to 8 kHz)

Every random number comes from the crop plan (`AUG_DRAWS` uniforms per crop), so a batch is
still a function of (seed, rank, step): resumed runs and the memory and disk crop sources
give the same batches. All of it runs on the batch as torch tensors, on the training device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..units import SAMPLE_RATE
from .config import Augment

#: Uniform numbers drawn per crop: four per augmentation (a gate, then its parameters),
#: in the order mix, eq, band_limit, reverb, noise, stretch, tones.
AUG_DRAWS = 28


def _lerp(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * u


def _loglerp(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return torch.exp(_lerp(u, math.log(low), math.log(high)))


def _gain_curve(u: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(B, F) amplitude gains: a tilt and a one-octave bell, from u (B, 3)."""
    octaves = torch.log2(freqs.clamp(min=20.0) / 1000.0)
    tilt = _lerp(u[:, :1], -3.0, 3.0) * octaves
    centre = torch.log2(_loglerp(u[:, 1:2], 80.0, 12_000.0) / 1000.0)
    bell = _lerp(u[:, 2:3], -9.0, 9.0) * torch.exp(-0.5 * ((octaves - centre) / 0.5) ** 2)
    return torch.pow(10.0, (tilt + bell) / 20)


def _lowpass(u: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(B, F) gains of a low-pass at 3.4..20 kHz with a 10 % raised-cosine transition."""
    cutoff = _loglerp(u[:, :1], 3400.0, 20_000.0)
    x = ((freqs - 0.9 * cutoff) / (0.1 * cutoff)).clamp(0.0, 1.0)
    return 0.5 * (1 + torch.cos(math.pi * x))


def _room(u: torch.Tensor, length: int) -> torch.Tensor:
    """(B, length) impulse responses: a unit direct path plus a decaying noise tail."""
    t = torch.arange(length, device=u.device) / SAMPLE_RATE
    rt60 = _lerp(u[:, :1], 0.1, 0.8)
    wet = _lerp(u[:, 1:2], 0.1, 0.3)
    g = torch.Generator(device="cpu").manual_seed(int(u[0, 2].item() * 2**31))
    tail = torch.randn(u.shape[0], length, generator=g).to(u)
    tail = tail * torch.exp(-6.91 * t / rt60)  # -60 dB at rt60
    tail = tail / tail.square().sum(-1, keepdim=True).sqrt().clamp(min=1e-9)
    ir = wet * tail
    ir[:, 0] = 1.0
    return ir


def _noise(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, S) white or pink noise 20..50 dB below each crop's RMS."""
    g = torch.Generator(device="cpu").manual_seed(int(u[0, 2].item() * 2**31))
    white = torch.randn(x.shape, generator=g).to(x)
    spectrum = torch.fft.rfft(white)
    pink = torch.fft.irfft(spectrum / torch.arange(1, spectrum.shape[-1] + 1,
                                                   device=x.device).sqrt(), n=x.shape[-1])
    noise = torch.where(u[:, :1] < 0.5, white, pink)
    level = x.square().mean(-1, keepdim=True).sqrt() * torch.pow(10.0, -_lerp(u[:, 1:2],
                                                                               20, 50) / 20)
    return noise * level / noise.square().mean(-1, keepdim=True).sqrt().clamp(min=1e-9)


def _stretch(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Each crop played 1 + 0..6 % slower, cut back to its length."""
    out = torch.empty_like(x)
    for i, factor in enumerate(_lerp(u[:, 0], 1.0, 1.06).tolist()):
        longer = F.interpolate(x[i].view(1, 1, -1), scale_factor=factor, mode="linear",
                               align_corners=False)
        out[i] = longer.view(-1)[: x.shape[-1]]
    return out


def _tones(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """(B, S) crops with a sine each, from u (B, 3): its start frequency, its glide (the
    first half of the draws: steady; the second: an end frequency up to two octaves away),
    and whether it replaces the crop (peak 0.5, before the crop's gain) or is added to it
    0..20 dB below the crop's RMS."""
    start = _loglerp(u[:, :1], 100.0, 16_000.0)
    octaves = torch.where(u[:, 1:2] < 0.5, torch.zeros_like(start), (u[:, 1:2] - 0.75) * 8)
    ramp = torch.arange(x.shape[-1], device=x.device) / x.shape[-1]
    freq = (start * torch.pow(2.0, octaves * ramp)).clamp(20.0, 20_000.0)
    offset = torch.remainder(u[:, :1] * 1000, 1) * 2 * math.pi  # a start phase
    tone = torch.sin(offset + torch.cumsum(2 * math.pi * freq / SAMPLE_RATE, dim=-1))
    alone = u[:, 2:3] < 0.5
    below = _lerp(torch.remainder(u[:, 2:3] * 2, 1), 0.0, 20.0)
    rms = x.square().mean(-1, keepdim=True).sqrt()
    added = x + tone * math.sqrt(2) * rms * torch.pow(10.0, -below / 20)
    return torch.where(alone, 0.5 * tone, added)


def augment(x: torch.Tensor, u: torch.Tensor, p: Augment) -> torch.Tensor:
    """Augment crops x (B, S) with the plan's uniforms u (B, AUG_DRAWS); returns (B, S)."""
    if not p.active:
        return x
    gates = u[:, ::4]  # one gate per augmentation, each followed by its parameters

    def chosen(k: int, prob: float) -> torch.Tensor:
        return (gates[:, k] < prob)[:, None]

    if p.mix > 0:
        other = x.roll(1, dims=0) * torch.pow(10.0, -_lerp(u[:, 1:2], 0.0, 15.0) / 20)
        x = torch.where(chosen(0, p.mix), x + other, x)
    if p.eq > 0 or p.band_limit > 0:
        freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SAMPLE_RATE).to(x)
        gain = torch.ones(x.shape[0], freqs.numel(), device=x.device)
        gain = torch.where(chosen(1, p.eq), gain * _gain_curve(u[:, 5:8], freqs), gain)
        gain = torch.where(chosen(2, p.band_limit), gain * _lowpass(u[:, 9:12], freqs), gain)
        x = torch.fft.irfft(torch.fft.rfft(x) * gain, n=x.shape[-1])
    if p.reverb > 0:
        n = 2 * x.shape[-1]
        ir = _room(u[:, 13:16], x.shape[-1])
        wet = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(ir, n), n)[:, : x.shape[-1]]
        x = torch.where(chosen(3, p.reverb), wet, x)
    if p.noise > 0:
        x = torch.where(chosen(4, p.noise), x + _noise(u[:, 17:20], x), x)
    if p.stretch > 0:
        x = torch.where(chosen(5, p.stretch), _stretch(x, u[:, 21:22]), x)
    if p.tones > 0:
        x = torch.where(chosen(6, p.tones), _tones(x, u[:, 25:28]), x)
    return x

"""Multi-period (MPD) and multi-resolution STFT (MRD) discriminators, as in the recipe.

Both take waveforms (B, 1, T) and return a `DiscriminatorOutput`: one logit map per
sub-discriminator and the feature maps of every layer, used by the hinge and
feature-matching losses. Every convolution trains with weight normalisation.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

#: Published sub-discriminators: periods of the MPD, (n_fft, hop, win) of the MRD.
PERIODS = (2, 3, 5, 7, 11)
RESOLUTIONS = ((512, 20, 160), (1024, 40, 320), (2048, 80, 640))
_SLOPE = 0.1  # leaky ReLU slope


@dataclasses.dataclass
class DiscriminatorOutput:
    """Logits (one tensor per sub-discriminator) and their layers' feature maps."""

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]

    def halves(self) -> tuple["DiscriminatorOutput", "DiscriminatorOutput"]:
        """Split a pass over cat([a, b]) along the batch into the outputs for a and for b."""
        first = DiscriminatorOutput([x.chunk(2)[0] for x in self.logits],
                                    [[x.chunk(2)[0] for x in fs] for fs in self.features])
        second = DiscriminatorOutput([x.chunk(2)[1] for x in self.logits],
                                     [[x.chunk(2)[1] for x in fs] for fs in self.features])
        return first, second


class ConvStack(nn.Module):
    """Convolutions with leaky ReLU, then a 1-channel output convolution."""

    def __init__(self, layers: list[nn.Module], post: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.post = weight_norm(post)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, ...) -> (logits (B, -1), feature maps of every layer)."""
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), _SLOPE)
            features.append(x)
        x = self.post(x)
        features.append(x)
        return x.flatten(1), features


def _period_stack(channels: tuple[int, ...]) -> ConvStack:
    """HiFi-GAN period discriminator body: kernel 5 along time, stride 3 in the first four.

    HiFi-GAN writes these as (5, 1) 2-D kernels over a (time / period, period) grid; the
    same maps are computed here as 1-D convolutions with the period folded into the batch,
    which is faster on the CPU.
    """
    widths = (1,) + tuple(channels)
    layers = [nn.Conv1d(c_in, c_out, 5, 3 if i < 4 else 1, padding=2)
              for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))]
    return ConvStack(layers, nn.Conv1d(widths[-1], 1, 3, padding=1))


#: (kernel, stride) of the resolution discriminators' layers, over (frequency, time).
_RESOLUTION_LAYERS = (((7, 5), (2, 2)), ((5, 3), (2, 1)), ((5, 3), (2, 2)),
                      ((3, 3), (2, 1)), ((3, 3), (2, 2)))


def _resolution_stack(channels: int) -> ConvStack:
    """Spectrogram discriminator body: five strided 2-D convolutions, then the output conv.

    Every layer halves the frequency axis and every other one the time axis, so the cost
    stays moderate at the recipe's small hops (20 to 80 samples give many frames).
    """
    layers = [nn.Conv2d(1 if i == 0 else channels, channels, kernel, stride,
                        padding=(kernel[0] // 2, kernel[1] // 2))
              for i, (kernel, stride) in enumerate(_RESOLUTION_LAYERS)]
    return ConvStack(layers, nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))


class MultiPeriodDiscriminator(nn.Module):
    """Folds the waveform into `period` interleaved sequences and judges each.

    Feature maps are (B * period, C, frames), batch-major, so they split by batch like
    every other output.
    """

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.stacks = nn.ModuleList(_period_stack(channels) for _ in PERIODS)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        batch = wav.shape[0]
        for period, stack in zip(PERIODS, self.stacks):
            x = F.pad(wav, (0, -wav.shape[-1] % period), mode="reflect")
            # (B, 1, T) -> (B, T / period, period) -> (B * period, 1, T / period): sample
            # j of every period becomes sequence j of its batch item.
            x = x.view(batch, -1, period).transpose(1, 2).reshape(batch * period, 1, -1)
            logit, maps = stack(x)
            logits.append(logit.reshape(batch, -1))
            features.append(maps)
        return DiscriminatorOutput(logits, features)


class MultiResolutionDiscriminator(nn.Module):
    """Judges STFT magnitude spectrograms at three resolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.stacks = nn.ModuleList(_resolution_stack(channels) for _ in RESOLUTIONS)
        for i, (_, _, win) in enumerate(RESOLUTIONS):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def magnitude(self, wav: torch.Tensor, i: int) -> torch.Tensor:
        """(B, 1, T) -> (B, 1, n_fft // 2 + 1, frames) magnitude, computed in float32."""
        n_fft, hop, win = RESOLUTIONS[i]
        with torch.autocast(wav.device.type, enabled=False):
            spec = torch.stft(wav.float().squeeze(1), n_fft, hop, win,
                              window=getattr(self, f"window{i}"), center=True,
                              return_complex=True)
            # channels-last makes these strided 2-D convolutions faster on CPUs and GPUs.
            return spec.abs().unsqueeze(1).contiguous(memory_format=torch.channels_last)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for i, stack in enumerate(self.stacks):
            logit, maps = stack(self.magnitude(wav, i))
            logits.append(logit)
            features.append(maps)
        return DiscriminatorOutput(logits, features)


class Discriminators(nn.Module):
    """The MPD and the MRD together: one module, one optimiser.

    `mrd_channels=0` leaves the MRD out (its output is then empty and adds nothing to any
    loss): on a CPU it is two thirds of the discriminators' cost at a tenth of their
    weight in the recipe (docs/training.md).
    """

    def __init__(self, mpd_channels: tuple[int, ...], mrd_channels: int) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(mpd_channels)
        self.mrd = MultiResolutionDiscriminator(mrd_channels) if mrd_channels else None

    def forward(self, wav: torch.Tensor) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """(B, 1, T) -> (MPD output, MRD output)."""
        return self.mpd(wav), (self.mrd(wav) if self.mrd is not None
                               else DiscriminatorOutput([], []))

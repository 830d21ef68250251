"""Incremental coding with the streamable (causal) model: audio in as it arrives, codes
out frame by frame, and back.

    >>> enc, dec = StreamEncoder(model), StreamDecoder(model)
    >>> codes = enc.push(samples)      # (B, n) float -> (B, n_codebooks, frames) int64
    >>> audio = dec.push(codes)        # -> (B, samples) float, as soon as they are final
    >>> codes = enc.finish()           # end of input: pads the last frame, plus one
    >>> audio = dec.push(codes)

`StreamEngine` codes whole signals and files this way (the `base.Engine` of the
streamable model); real-time pipes (`live.py`) use the encoder and decoder directly.

The whole state of a stream lives in the engine objects (the networks' `StepState`, the
STFT's sample buffer and the overlap-add tail), so one model serves many streams. Pushing a
signal in pieces of any sizes gives the codes and samples of coding it at once, to float
rounding (tests/engine/test_stream.py).

Latency, with zero compute time: a code frame is emitted once its 320 samples have
arrived, and the decoder's output for a frame is final once the next frame has overlapped
it (win_length - hop_length = 280 samples): 320 + 280 = 600 samples, 12.5 ms at 48 kHz,
at worst (see `algorithmic_latency`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .. import machine
from ..nn import spectral
from ..nn.config import CodecConfig
from ..nn.model import APCodec
from ..units import ceil_div
from .base import CodeFrames, trim
from .streamnet import StepState, StreamNet


def algorithmic_latency(config: CodecConfig) -> int:
    """Worst-case delay in samples from an input sample to its decoded output sample."""
    return config.samples_per_frame + config.win_length - config.hop_length


def decoder_history(config: CodecConfig) -> int:
    """Code frames of past that fully determine the decoder's next output.

    The causal decoder's receptive field is finite (the causal GRN only looks `grn_window`
    frames back), so decoding may start this many frames before the wanted range, from a
    fresh state, and give the same samples as decoding from the start.
    """
    c = config
    stft_frames = ((c.kernel_size - 1) * 2  # branch conv and output heads
                   + c.n_blocks * (c.kernel_size - 1 + c.grn_window - 1)
                   + ceil_div(c.win_length - c.hop_length, c.hop_length))  # overlap-add
    return (c.kernel_size - 1) + 1 + ceil_div(stft_frames, c.downsample)


class _Stream:
    """One stream through a causal model: its packed networks and this stream's state."""

    def __init__(self, model: APCodec) -> None:
        self.config = model.config
        self._net = StreamNet.for_model(model)  # raises if the model is not causal
        self._state = StepState()
        self._device = next(model.parameters()).device


class StreamEncoder(_Stream):
    """Samples in, code frames out: one frame per `samples_per_frame` samples."""

    def __init__(self, model: APCodec) -> None:
        super().__init__(model)
        self._analysis = spectral.StreamAnalysis(model.config, self._device)
        self.samples = 0  # samples pushed so far, per channel

    @torch.inference_mode()
    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """(B, n) samples at the codec's rate -> (B, n_codebooks, frames) int64 codes of the
        frames they complete (on the CPU)."""
        samples = samples.to(self._device, torch.float32)
        self.samples += samples.shape[-1]
        return self._net.encode_step(*self._analysis.push(samples), self._state)

    def finish(self, channels: int = 1) -> torch.Tensor:
        """End of input: zeros complete the last frame, then one more frame, whose codes let
        the decoder finish the last real samples. Returns those final codes."""
        spf = self.config.samples_per_frame
        pad = (-self.samples) % spf + spf
        return self.push(torch.zeros(channels, pad))


class StreamDecoder(_Stream):
    """Code frames in, samples out as soon as no later frame can change them."""

    def __init__(self, model: APCodec) -> None:
        super().__init__(model)
        self._synthesis = spectral.StreamSynthesis(model.config, self._device)

    @torch.inference_mode()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n_codebooks, frames) codes -> (B, samples) float32 audio (on the CPU)."""
        codes = torch.as_tensor(codes, dtype=torch.long).to(self._device)
        return self._synthesis.push(*self._net.decode_step(codes, self._state)).cpu()

    def flush(self) -> torch.Tensor:
        """The last win_length - hop_length samples as they stand (no frame follows)."""
        return self._synthesis.flush().cpu()


# ---- the engine of whole signals and files -----------------------------------------------


class StreamEngine:
    """The streamable model's engine (a `base.Engine`): a signal is coded as one stream.

    Encoding pushes the blocks through a `StreamEncoder`; a signal of L > 0 samples gives
    ceil(L / samples_per_frame) + 1 frames in all (the last from `StreamEncoder.finish`).
    Decoding runs a `StreamDecoder` from `decoder_history` frames before the samples
    asked for, from a fresh state: the samples of a decoder started at frame 0.
    """

    def __init__(self, model: APCodec) -> None:
        self.model = model
        self.config = model.config
        self._state_bytes: int | None = None  # one channel's stream state, once measured

    def check_channels(self, channels: int) -> None:
        """Raise MachineLimitError when `channels` streams' states do not fit in memory
        (each channel keeps its own, 3.3 MB with the shipped model: a crafted header's
        1024 channels took 5 GB)."""
        if channels <= GROUP_CHANNELS:
            return
        if self._state_bytes is None:
            probe = StreamDecoder(self.model)
            probe.push(torch.zeros(1, self.config.n_codebooks, 1, dtype=torch.long))
            self._state_bytes = probe._state.nbytes
        machine.check_memory(channels * self._state_bytes, f"{channels} channels of a "
                             "streamable model's state")

    def encode(self, blocks: Iterable[np.ndarray], samples: int, channels: int
               ) -> Iterator[np.ndarray]:
        """See `base.Engine.encode`: one array per block, then the final frames."""
        self.check_channels(channels)
        groups = _Groups(lambda: StreamEncoder(self.model), channels)
        pushed = 0
        for block in blocks:
            pushed += block.shape[1]
            yield groups.map(lambda encoder, part: encoder.push(torch.from_numpy(part)), block)
        if pushed:
            yield groups.map(lambda encoder, part: encoder.finish(part.shape[0]),
                             np.zeros((channels, 0), np.float32))

    def decode(self, frames: CodeFrames, first: int = 0, count: int | None = None
               ) -> Iterator[np.ndarray]:
        """See `base.Engine.decode`: frames are read `frames.chunk_frames` at a time."""
        spf = self.config.samples_per_frame
        # Start early enough that the decoder's state is the one it would have had.
        begin = max(0, first // spf - decoder_history(self.config))
        return trim(self._decode_from(frames, begin), first - begin * spf, count)

    def _decode_from(self, frames: CodeFrames, start: int) -> Iterator[np.ndarray]:
        """Audio of frames [start, n_frames) as a decoder started at frame `start` hears
        it; the last block is the decoder's flush."""
        groups: _Groups | None = None
        for a in range(start, frames.n_frames, frames.chunk_frames):
            codes = frames.read(a, min(a + frames.chunk_frames, frames.n_frames))
            if groups is None:
                self.check_channels(codes.shape[0])
                groups = _Groups(lambda: StreamDecoder(self.model), codes.shape[0])
            yield groups.map(lambda decoder, part: decoder.push(torch.from_numpy(part)), codes)
        if groups is None:  # no frames: what a fresh decoder holds
            yield StreamDecoder(self.model).flush().numpy()
            return
        yield groups.map(lambda decoder, part: decoder.flush(),
                         np.zeros((groups.channels, 0), np.float32))


#: Channels one stream runs at once: more (a crafted header's 1024) run as several streams,
#: so that the working memory of a step stays bounded.
GROUP_CHANNELS = 16


class _Groups:
    """The streams of a signal's channels, `GROUP_CHANNELS` channels each."""

    def __init__(self, make: Callable[[], _Stream], channels: int) -> None:
        self.channels = channels
        self._starts = range(0, channels, GROUP_CHANNELS)
        self._streams = [make() for _ in self._starts]

    def map(self, step: Callable[[Any, np.ndarray], torch.Tensor], data: np.ndarray
            ) -> np.ndarray:
        """`step(stream, its channels of data)` of every group, joined on the channel axis."""
        return np.concatenate([
            step(stream, np.ascontiguousarray(data[a:a + GROUP_CHANNELS])).numpy()
            for stream, a in zip(self._streams, self._starts)])

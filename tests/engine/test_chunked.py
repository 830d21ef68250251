"""Chunked processing versus whole-signal processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apcodec_cli.engine import chunked
from apcodec_cli.codec import Codec
from apcodec_cli.models.weights import load

from helpers import make_weights, tone


def _whole(codec: Codec, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and audio of the whole signal in one forward pass (no chunking)."""
    spf = codec.config.samples_per_frame
    padded = np.pad(wav, ((0, 0), (0, -wav.shape[1] % spf)))
    with torch.inference_mode():
        codes = codec.model.encode(torch.from_numpy(padded)[:, None])
        audio = codec.model.decode(codes)
    return codes.numpy(), audio[:, 0].numpy()


def _snr(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - test) ** 2)))


def test_plan_covers_every_frame_once() -> None:
    plan = chunked.ChunkPlan(n_frames=1000, chunk_frames=150, context_frames=16)
    owned = [f for i in range(plan.n_chunks) for f in range(*plan.chunk(i))]
    assert owned == list(range(1000))
    assert plan.window(0) == (0, 166) and plan.window(6) == (884, 1000)


def test_a_signal_within_one_chunk_is_processed_whole_exactly(codec: Codec) -> None:
    wav = tone(0.9)
    codes, audio = _whole(codec, wav)
    assert np.array_equal(codec.encode(wav), codes)
    np.testing.assert_allclose(codec.decode(codes), audio, atol=1e-5)


def test_context_covers_the_receptive_field(tmp_path) -> None:
    # With GRN at its initial identity, only the convolutions reach across chunk seams,
    # and the context must cover them: chunked output then equals whole-signal output.
    codec = Codec(load(make_weights(tmp_path / "w.pt", grn=False)))
    wav = tone(4.3)
    codes, audio = _whole(codec, wav)
    assert np.array_equal(codec.encode(wav), codes)
    np.testing.assert_allclose(codec.decode(codes), audio, atol=2e-4)


def test_chunked_output_is_close_to_whole_signal_output(codec: Codec) -> None:
    # With GRN active every frame depends a little on the whole window: measure how much.
    wav = tone(6.0, seed=3)
    codes, audio = _whole(codec, wav)
    chunked_codes = codec.encode(wav)
    assert np.mean(chunked_codes == codes) > 0.9
    assert _snr(audio, codec.decode(codes)) > 20.0


@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_of_any_size_give_the_same_codes(codec: Codec, seed: int) -> None:
    wav = tone(3.7, channels=2)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, wav.shape[1], size=7))
    blocks = np.split(wav, cuts, axis=1)
    engine = chunked.ChunkedEngine(codec.model, batch_size=3)
    pieces = list(engine.encode(blocks, wav.shape[1], channels=2))
    assert np.array_equal(np.concatenate(pieces, axis=-1), codec.encode(wav))


def test_batch_size_does_not_change_results(codec: Codec) -> None:
    wav = tone(5.0)
    codes = codec.encode(wav)
    codec_b1 = Codec(codec.weights, batch_size=1)
    assert np.array_equal(codec_b1.encode(wav), codes)
    np.testing.assert_allclose(codec_b1.decode(codes), codec.decode(codes), atol=1e-5)


def test_a_suspended_iterator_leaves_the_callers_thread_count_alone(tiny_weights) -> None:
    """Batches run on 2 threads of one intra-op thread each; between next() calls the
    process's count is the caller's (it stayed 1 while the iterator was suspended)."""
    import threading

    from apcodec_cli.engine.runners import LocalRunner

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        loaded = load(tiny_weights)
        codec = Codec(loaded, chunk_frames=10, batch_size=1,
                      runner=LocalRunner(loaded.model, workers=2))
        seen, inside = [], []
        fresh = lambda: inside.append(torch.get_num_threads())  # noqa: E731
        for _ in codec.engine.encode([tone(1.0)], 48_000, 1):
            thread = threading.Thread(target=fresh)
            thread.start()
            thread.join()
            seen.append(torch.get_num_threads())
        assert len(seen) > 3 and set(seen) == {3} and set(inside) == {3}
    finally:
        torch.set_num_threads(before)


def test_batch_threads_compute_with_one_thread_each() -> None:
    """Also when a batch thread first computes after the caller has its count back (batches
    of uneven length make that happen: it then took the caller's 3)."""
    import random
    import time

    from apcodec_cli.engine.runners import run_batches

    def uneven(seed: int) -> int:
        time.sleep(random.Random(seed).random() * 0.01)
        return torch.get_num_threads()

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        for trial in range(20):
            counts = [n for _, n in run_batches(uneven, ((i, 6 * trial + i) for i in range(6)),
                                                workers=2)]
            assert counts == [1] * 6 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

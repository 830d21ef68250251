"""Reading, resampling and writing audio."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.format.audio import AudioError, AudioWriter, read_blocks, resampled_length

from helpers import write_audio


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
def test_blocks_hold_exactly_the_resampled_length(tmp_path, rate: int) -> None:
    write_audio(tmp_path / "a.wav", 2.3456, rate=rate, channels=2)
    info, total, blocks = read_blocks(str(tmp_path / "a.wav"), 48000, block_seconds=0.7)
    audio = np.concatenate(list(blocks), axis=1)
    assert (info.sample_rate, info.channels) == (rate, 2)
    assert total == resampled_length(info.frames, rate, 48000) == audio.shape[1]
    assert audio.shape[0] == 2 and audio.dtype == np.float32


def test_resampling_keeps_a_tone_and_mono_averages_channels(tmp_path) -> None:
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "a.flac", np.stack([left, right], 1), 44100)
    _, total, blocks = read_blocks(str(tmp_path / "a.flac"), 48000, mono=True)
    audio = np.concatenate(list(blocks), axis=1)
    assert audio.shape == (1, 48000)
    expected = 0.75 * np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000)
    assert np.max(np.abs(audio[0, 1000:-1000] - expected[1000:-1000])) < 1e-3


def test_resampled_length_rounds_half_up() -> None:
    assert resampled_length(44100, 44100, 48000) == 48000
    assert resampled_length(1, 96000, 48000) == 1  # 0.5 rounds up
    assert resampled_length(0, 44100, 48000) == 0


def test_unreadable_input_is_an_audio_error(tmp_path) -> None:
    (tmp_path / "x.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="cannot read"):
        read_blocks(str(tmp_path / "x.wav"), 48000)


def test_writer_clips_instead_of_wrapping_and_counts() -> None:
    buffer = io.BytesIO()
    with AudioWriter(buffer, 48000, 48000, 1, 4) as writer:
        writer.write(np.array([[1.5, -2.0, 0.25, 1.0]], np.float32), last=True)
    assert writer.clipped == 3
    buffer.seek(0)
    data, _ = sf.read(buffer, dtype="int16")
    assert data.tolist() == [32767, -32768, 8192, 32767]


def test_writer_produces_exactly_the_asked_length_at_another_rate() -> None:
    buffer = io.BytesIO()
    with AudioWriter(buffer, 48000, 44100, 2, 44100, subtype="FLOAT") as writer:
        for _ in range(3):
            writer.write(np.zeros((2, 16000), np.float32))
        writer.write(np.zeros((2, 0), np.float32), last=True)
    buffer.seek(0)
    info = sf.info(buffer)
    assert (info.frames, info.channels, info.samplerate) == (44100, 2, 44100)

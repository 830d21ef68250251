"""Real-time pipes: the live stream format, WAV streams, and `--streaming` on the CLI."""

from __future__ import annotations

import dataclasses
import io
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.codec import Codec
from apcodec_cli.format import bitstream, live
from apcodec_cli.format.audio import resampled_length
from apcodec_cli.format.wavstream import WavStreamReader
from apcodec_cli.format.bitstream import (ChecksumError, Header, LiveStreamError, TrailingDataError,
                                   TruncatedError, read_apc)
from helpers import flip, tone, write_audio

pytestmark = pytest.mark.usefixtures("one_thread")


def _header(**changes) -> Header:
    values = dict(sample_rate=48_000, samples_per_frame=320, n_codebooks=4, bits_per_code=10,
                  chunk_frames=15, channels=2, source_sample_rate=44_100, source_length=0,
                  coded_length=0, fingerprint=b"12345678", model_name="tiny-s",
                  streamable=True, live=True)
    return Header(**{**values, **changes})


def _live_bytes(codes: np.ndarray, pieces: list[int], coded: int) -> bytes:
    out = io.BytesIO()
    writer = live.LiveWriter(out, _header())
    pos = 0
    for n in pieces:
        writer.write(codes[:, :, pos:pos + n])
        pos += n
    writer.close(source_length=coded * 44_100 // 48_000, coded_length=coded)
    return out.getvalue()


def test_live_streams_round_trip_records_of_any_size() -> None:
    codes = np.random.default_rng(0).integers(0, 1024, (2, 4, 40))
    data = _live_bytes(codes, [1, 0, 20, 3, 16], coded=12_480)  # 40 frames = ceil(L / 320) + 1
    reader = live.LiveReader(io.BytesIO(data))
    records = list(reader)
    assert [r.shape[2] for r in records] == [15, 15, 10]
    assert np.array_equal(np.concatenate(records, axis=2), codes)
    assert (reader.file_header.source_length, reader.file_header.coded_length) == (11_466, 12_480)
    header, whole = live.LiveReader(io.BytesIO(data)).read_all()
    assert header.coded_length == 12_480 and not header.live and np.array_equal(whole, codes)
    with pytest.raises(LiveStreamError):  # no random access into a live stream
        read_apc(data)


def test_the_lengths_come_before_the_last_frames() -> None:
    """A decoder learns where the signal ends before it decodes the frames that reach it."""
    codes = np.random.default_rng(2).integers(0, 1024, (2, 4, 40))
    out = io.BytesIO()
    writer = live.LiveWriter(out, _header())
    writer.write(codes[:, :, :37])  # frames of audio that had arrived before the end
    writer.end(source_length=11_466, coded_length=12_480)
    writer.write(codes[:, :, 37:])  # the encoder's last frames
    writer.close()
    reader = live.LiveReader(io.BytesIO(out.getvalue()))
    known_at = [(r.shape[2], reader.file_header is not None) for r in reader]
    assert known_at == [(15, False), (15, False), (10, True)]


def _old_live_bytes(codes: np.ndarray, coded: int) -> bytes:
    """A live stream as written before the lengths record moved: the lengths come last."""
    h = _header()
    data = h.to_bytes()
    for index, start in enumerate(range(0, codes.shape[2], 15)):
        part = codes[:, :, start:start + 15]
        body = struct.pack("<H", part.shape[2]) + bitstream.pack_frames(h, part)
        data += body + struct.pack("<I", bitstream.indexed_crc(index, body))
    end = struct.pack("<HQQ", 0, coded * 44_100 // 48_000, coded)
    return data + end + struct.pack("<I", bitstream.indexed_crc(index + 1, end))


def test_streams_with_the_lengths_last_still_read() -> None:
    codes = np.random.default_rng(3).integers(0, 1024, (2, 4, 40))
    header, whole = live.LiveReader(io.BytesIO(_old_live_bytes(codes, 12_480))).read_all()
    assert header.coded_length == 12_480 and np.array_equal(whole, codes)


@pytest.mark.parametrize("samples, rate", [(317, 48_000), (48_007, 48_000), (20_000, 44_100)])
def test_streaming_pipes_keep_the_exact_length(cli, tiny_stream_weights: Path, tmp_path: Path,
                                               samples: int, rate: int) -> None:
    """`encode -s - - < a.wav | decode -s - b.wav` was up to 360 samples long."""
    sf.write(tmp_path / "in.wav", tone(samples / rate, rate)[0], rate)
    w = tiny_stream_weights
    encoded = cli("encode", "-s", "-q", "-w", w, "-", "-",
                   input=(tmp_path / "in.wav").read_bytes())
    assert encoded.exit_code == 0, encoded.output
    assert cli("decode", "-s", "-q", "-w", w, "-", tmp_path / "out.wav",
                input=encoded.stdout_bytes).exit_code == 0
    expected = samples if rate == 48_000 else resampled_length(samples, rate, 48_000)
    assert sf.info(tmp_path / "out.wav").frames == expected


@pytest.mark.parametrize("damage, error", [
    (lambda d: d[:-30], TruncatedError),
    (lambda d: d[:-22], TruncatedError),  # cut in the last record
    (lambda d: flip(d, 80, 1), ChecksumError),
    (lambda d: d + b"\0", TrailingDataError),
])
def test_damaged_live_streams_are_refused(damage, error) -> None:
    codes = np.random.default_rng(1).integers(0, 1024, (2, 4, 40))
    data = damage(_live_bytes(codes, [40], coded=12_480))
    with pytest.raises(error):
        list(live.LiveReader(io.BytesIO(data)))


def _record_ends(data: bytes) -> list[int]:
    """Where each frame record of a live stream ends, in bytes."""
    f = io.BytesIO(data)
    return [f.tell() for _ in live.LiveReader(f)]


def test_skip_damaged_reads_a_damaged_record_as_code_0_and_names_it() -> None:
    codes = np.random.default_rng(2).integers(1, 1024, (2, 4, 40))
    data = _live_bytes(codes, [40], coded=12_480)  # records of 15, 15 and 10 frames
    damaged = flip(data, _record_ends(data)[0] + 10, 1)  # inside the second record
    with pytest.raises(ChecksumError, match="record 1"):
        list(live.LiveReader(io.BytesIO(damaged)))
    reader = live.LiveReader(io.BytesIO(damaged), skip_damaged=True)
    got = np.concatenate(list(reader), axis=2)
    assert [(first, end) for _, first, end in reader.damaged] == [(15, 30)]
    assert reader.damaged[0][0].startswith("record 1")
    assert not got[:, :, 15:30].any()
    assert np.array_equal(np.delete(got, np.s_[15:30], axis=2),
                          np.delete(codes, np.s_[15:30], axis=2))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_wav_streams_of_unknown_length_read_like_files(subtype: str) -> None:
    audio = tone(0.1, 44_100, 2)
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, 44_100, subtype=subtype, format="WAV")
    data = bytearray(buffer.getvalue())
    data[data.index(b"data") + 4:data.index(b"data") + 8] = struct.pack("<I", 0xFFFFFFFF)
    reader = WavStreamReader(io.BytesIO(bytes(data)))
    got = np.concatenate([reader.read(1000) for _ in range(6)], axis=1)
    expected, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="float32")
    assert (reader.sample_rate, reader.channels) == (44_100, 2)
    np.testing.assert_allclose(got, expected.T, atol=1e-6)


def test_a_damaged_live_stream_fails_or_decodes_with_silence(cli, tiny_stream_weights: Path,
                                                             tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 1.0)
    w = tiny_stream_weights
    encoded = cli("encode", "-s", "-q", "-w", w, "-", "-",
                  input=(tmp_path / "in.wav").read_bytes())
    assert encoded.exit_code == 0, encoded.output
    ends = _record_ends(encoded.stdout_bytes)  # records of 15 frames, 100 ms
    damaged = flip(encoded.stdout_bytes, ends[3] + 10, 1)  # record 4: 0.4-0.5 s
    failed = cli("decode", "-s", "-w", w, "-", tmp_path / "x.wav", input=damaged)
    assert failed.exit_code == 1 and "record 4" in failed.stderr
    assert not (tmp_path / "x.wav").exists()
    kept = cli("decode", "-s", "--skip-damaged", "-w", w, "-", tmp_path / "x.wav",
               input=damaged)
    assert kept.exit_code == 0, kept.output
    assert "record 4 (after 0.40 s) is damaged: wrote silence there" in kept.stderr
    clean = cli("decode", "-s", "-w", w, "-", tmp_path / "clean.wav",
                input=encoded.stdout_bytes)
    assert clean.exit_code == 0, clean.output
    audio, reference = sf.read(tmp_path / "x.wav")[0], sf.read(tmp_path / "clean.wav")[0]
    assert len(audio) == len(reference) == 48_000
    assert not audio[int(0.4 * 48_000):int(0.5 * 48_000)].any()
    assert reference[int(0.4 * 48_000):int(0.5 * 48_000)].any()
    assert np.array_equal(audio[:int(0.35 * 48_000)], reference[:int(0.35 * 48_000)])


@pytest.mark.parametrize("kind", ["version-1", "bit-packed", "range-coded"])
def test_a_damaged_file_piped_to_a_streaming_decode_keeps_the_rest(
        cli, tiny_stream_weights: Path, tmp_path: Path, kind: str) -> None:
    """A version 1 file (as written before level gains) is read chunk by chunk; version 3
    files, bit-packed (untrained tiny weights, no code tables) or range-coded (the
    installed streamable release, with its tables), are read whole: the index is last."""
    audio = write_audio(tmp_path / "in.wav", 3.0)
    w = [] if kind == "range-coded" else ["-w", tiny_stream_weights]
    assert cli("encode", "-s", "-q", *w, tmp_path / "in.wav", tmp_path / "x.apc"
               ).exit_code == 0
    if kind == "version-1":
        codec = Codec.load(tiny_stream_weights, device="cpu")
        old = dataclasses.replace(codec.file_header(1, 48_000, 3 * 48_000, 3 * 48_000),
                                  version=1, network_fingerprint=None, level_frames=0)
        bitstream.write_apc(str(tmp_path / "x.apc"), old, codec.encode(audio))
    with open(tmp_path / "x.apc", "rb") as f:
        header = bitstream.peek_header(f)
    assert (header.version, header.needs_tables) == {
        "version-1": (1, False), "bit-packed": (3, False), "range-coded": (3, True)}[kind]
    data = (tmp_path / "x.apc").read_bytes()
    # chunks follow the header back to back (an index comes last)
    second = len(header.to_bytes()) + bitstream.ApcReader(io.BytesIO(data)).chunk_bytes(0)
    assert second == bitstream.ApcReader(io.BytesIO(data)).chunk_offset(1)
    damaged = flip(data, second + 10, 1)  # chunk 1: 1-2 s
    failed = cli("decode", "-s", *w, "-", tmp_path / "y.wav", input=damaged)
    assert failed.exit_code == 1 and "chunk 1" in failed.stderr
    kept = cli("decode", "-s", "--skip-damaged", *w, "-", tmp_path / "y.wav",
               input=damaged)
    assert kept.exit_code == 0, kept.output
    assert "chunk 1 (1.00–2.00 s) is damaged: wrote silence there" in kept.stderr
    audio = sf.read(tmp_path / "y.wav")[0]
    assert len(audio) == 3 * 48_000 and not audio[48_000:2 * 48_000].any()
    assert audio[:48_000].any() and audio[2 * 48_000 + 1000:].any()


def test_streaming_pipes_code_like_files(cli, tiny_stream_weights: Path,
                                         tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 1.3, rate=44_100, channels=2)
    w = tiny_stream_weights
    encoded = cli("encode", "-s", "-q", "-w", w, "-", "-",
                   input=(tmp_path / "in.wav").read_bytes())
    assert encoded.exit_code == 0, encoded.output
    live_codes = live.LiveReader(io.BytesIO(encoded.stdout_bytes)).read_all()
    assert cli("encode", "-s", "-q", "-w", w, tmp_path / "in.wav", tmp_path / "f.apc"
                ).exit_code == 0
    file_header, file_codes = read_apc(tmp_path / "f.apc")
    assert file_header.streamable and live_codes[0].coded_length == file_header.coded_length
    assert (live_codes[1] == file_codes).mean() > 0.99  # streamed vs whole-file resampling
    decoded = cli("decode", "-s", "-q", "-w", w, "-", "-", input=encoded.stdout_bytes)
    assert decoded.exit_code == 0, decoded.output
    out = WavStreamReader(io.BytesIO(decoded.stdout_bytes)).read(10**6)
    assert out.shape == (2, 62_400)  # exactly the input's length (issue 11.11)
    # A live stream saved to a file decodes exactly, with or without --streaming.
    (tmp_path / "live.apc").write_bytes(encoded.stdout_bytes)
    assert cli("decode", "-q", "-w", w, tmp_path / "live.apc", tmp_path / "a.wav"
                ).exit_code == 0
    assert cli("decode", "-q", "-s", "-w", w, tmp_path / "f.apc", tmp_path / "b.wav"
                ).exit_code == 0
    assert sf.info(tmp_path / "a.wav").frames == sf.info(tmp_path / "b.wav").frames == 62_400
    # A file streamed to a pipe is read front to back and trimmed exactly.
    piped = cli("decode", "-s", "-q", "-w", w, tmp_path / "f.apc", "-")
    assert piped.exit_code == 0, piped.output
    samples = WavStreamReader(io.BytesIO(piped.stdout_bytes)).read(10**6)
    whole, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    np.testing.assert_allclose(samples.T, whole, atol=1 / 16384)
    assert "live stream" in cli("info", tmp_path / "live.apc").output


def test_streaming_needs_the_streamable_model(cli, tiny_weights: Path, tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    result = cli("encode", "-s", "-w", tiny_weights, tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 1 and "streaming needs the streamable one" in result.output
    assert not (tmp_path / "x.apc").exists()


def test_explicit_streamable_weights_code_files_without_the_flag(
        cli, tiny_stream_weights: Path, tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    assert cli("encode", "-q", "-w", tiny_stream_weights, tmp_path / "in.wav",
                tmp_path / "x.apc").exit_code == 0
    assert read_apc(tmp_path / "x.apc")[0].streamable


def _read_available(stream, want: int, seconds: float) -> bytes:
    """What `stream` delivers within `seconds`, stopping early once `want` bytes came."""
    data, end = b"", time.monotonic() + seconds
    while time.monotonic() < end and len(data) < want:
        ready, _, _ = select.select([stream], [], [], 0.05)
        if ready:
            piece = os.read(stream.fileno(), 65536)
            if not piece:
                break
            data += piece
    return data


def test_a_real_time_pipe_writes_codes_while_the_audio_still_flows(
        tiny_stream_weights: Path) -> None:
    """Half a second of audio in, stdin left open: the records for it must come out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "apcodec_cli", "encode", "-s", "-q", "--packet", "1",
         "-w", str(tiny_stream_weights), "-", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        header = b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 48_000,
                                                             96_000, 2, 16)
        proc.stdin.write(header + b"data\xff\xff\xff\xff")
        samples = (tone(0.5)[0] * 32767).astype("<i2")
        proc.stdin.write(samples.tobytes())
        proc.stdin.flush()
        # 75 frames of 320 samples are complete; records of 1 frame are 2 + 5 + 4 bytes.
        want = 53 + len("tiny-s") + 75 * 11
        early = _read_available(proc.stdout, want, 60.0)
        assert len(early) >= want
        assert proc.poll() is None  # ... and the encoder is still waiting for more
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(30) == 0, proc.stderr.read()
        assert len(rest) >= 11 + 22  # the lengths record and the last frames
    finally:
        proc.kill()


def test_a_live_stream_whose_channels_exceed_memory_is_refused_up_front(
        tiny_stream_weights: Path, monkeypatch) -> None:
    from apcodec_cli import live as pipes, machine
    from apcodec_cli.models.weights import load

    model = load(tiny_stream_weights).model
    monkeypatch.setattr(machine, "available_memory", lambda: 10_000)
    header = _header(channels=40)
    with pytest.raises(machine.MachineLimitError, match="40 channels"):
        pipes.decode(model, header, io.BytesIO(b""), None)
    with pytest.raises(machine.MachineLimitError, match="40 channels"):
        pipes.encode(model, header, iter([]), io.BytesIO(), 48_000)

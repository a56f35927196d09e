"""Audio I/O on real recordings: every container the eval set has, bounded streaming,
encoding round trips, and every kind of bad input."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from voxa import audio
from voxa.errors import AudioError, InputError


@pytest.mark.parametrize("rel, seconds", [
    ("faster-whisper/jfk.flac", 11.0),  # stereo, 44.1 kHz, 24-bit flac
    ("aeneas/example7-de.mp3", 68.0),  # mp3, 44.1 kHz
    ("pocketsphinx/goforward.wav", 2.786),  # pcm_s16le wav
    ("pyannote-audio/ami-debug/trn00.wav", 30.0),  # float32 wav
])
def test_decodes_real_files_to_16k_mono_float(eval_dir, rel, seconds):
    x = audio.decode(eval_dir / rel)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(x.size / 16000 - seconds) < 0.05
    assert 0.05 < np.abs(x).max() < 2.0  # real signal, sensibly scaled


def test_stream_yields_bounded_blocks(eval_dir):
    blocks = list(audio.stream(eval_dir / "aeneas/example7-es.mp3", block_seconds=10.0))
    assert len(blocks) == 8
    assert all(b.size == 160000 for b in blocks[:-1]) and 0 < blocks[-1].size <= 160000


def test_bytes_file_object_and_array_inputs(eval_dir):
    data = (eval_dir / "faster-whisper/jfk.flac").read_bytes()
    a = audio.decode(data)
    b = audio.decode(io.BytesIO(data))
    assert a.size == b.size == 176000
    c = audio.decode(a)
    assert np.array_equal(a, c)
    stereo = np.stack([a, a], axis=1)
    assert audio.decode(stereo).size == a.size


def _mux(path, fmt, codec, x, rate=16000):
    """Write ``x`` with PyAV in a container the encoder does not offer (m4a, webm)."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout="mono")
        r = av.AudioResampler(format=s.codec_context.codec.audio_formats[0].name, layout="mono", rate=s.rate)
        f = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        f.sample_rate = rate
        for rf in r.resample(f) + r.resample(None):
            for p in s.encode(rf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.mark.parametrize("fmt, codec, ext", [("mp4", "aac", "m4a"), ("webm", "libopus", "webm")])
def test_decodes_m4a_and_webm(eval_dir, tmp_path, fmt, codec, ext):
    x = audio.decode(eval_dir / "faster-whisper/jfk.flac")
    path = tmp_path / f"jfk.{ext}"
    _mux(path, fmt, codec, x)
    y = audio.decode(path)
    assert abs(y.size - x.size) < 0.1 * 16000


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "aac"])
@pytest.mark.parametrize("rate", [16000, 24000, 22050])
def test_encode_round_trip_keeps_duration(eval_dir, fmt, rate):
    x = audio.decode(eval_dir / "pocketsphinx/goforward.wav", sample_rate=rate)
    y = audio.decode(audio.encode(x, rate, fmt))
    assert abs(y.size / 16000 - x.size / rate) < 0.1


def test_pcm_is_raw_int16():
    x = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    raw = audio.encode(x, 16000, "pcm")
    assert len(raw) == 2000
    assert np.allclose(np.frombuffer(raw, np.int16) / 32767, x, atol=1e-4)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_streaming_encoder_matches_duration(eval_dir, fmt):
    x = audio.decode(eval_dir / "faster-whisper/jfk.flac")
    enc = audio.Encoder(fmt, 16000)
    parts = [enc.write(x[i : i + 3200]) for i in range(0, x.size, 3200)] + [enc.close()]
    assert sum(1 for p in parts if p) > 2  # bytes come out while audio goes in
    y = audio.decode(b"".join(parts))
    assert abs(y.size - x.size) < 0.1 * 16000


def test_unknown_encode_format():
    with pytest.raises(InputError, match="unknown audio format"):
        audio.encode(np.zeros(100, np.float32), 16000, "xyz")


def _bad_inputs(eval_dir, tmp):
    jfk = (eval_dir / "faster-whisper/jfk.flac").read_bytes()
    wav = audio.encode(audio.decode(eval_dir / "faster-whisper/jfk.flac"), 16000, "wav")
    mp3 = (eval_dir / "aeneas/example7-de.mp3").read_bytes()
    files = {
        "empty.wav": b"",
        "text.wav": b"this is not audio\n" * 50,
        "noise.mp3": np.random.default_rng(0).bytes(40000),
        "trunc.flac": jfk[: len(jfk) // 2],
        "trunc.wav": wav[: len(wav) // 2],
        "trunc.mp3": mp3[: len(mp3) // 2],
        "header-only.wav": audio.wav_header(16000, 0),
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return files


@pytest.mark.parametrize("name, message", [
    ("missing.wav", "no such file"),
    (".", "is a directory"),
    ("empty.wav", "empty file"),
    ("text.wav", "not a readable audio file"),
    ("noise.mp3", "not a readable audio file"),
    ("trunc.flac", "truncated"),
    ("trunc.wav", "truncated"),
    ("trunc.mp3", "truncated"),
    ("header-only.wav", "no audio"),
])
def test_bad_input_gives_one_clear_line(eval_dir, tmp_path, name, message):
    _bad_inputs(eval_dir, tmp_path)
    with pytest.raises(AudioError, match=message) as e:
        audio.decode(tmp_path / name)
    assert "\n" not in str(e.value)


def test_empty_bytes_and_array():
    with pytest.raises(AudioError, match="empty"):
        audio.decode(b"")
    with pytest.raises(AudioError, match="no audio"):
        audio.decode(np.zeros(0, np.float32))


# ------------------------------------------------------------------ limits hold while decoding
def silent_flac(seconds: float) -> bytes:
    """FLAC whose header gives no length (written to a pipe), decoding to ``seconds`` of silence."""
    return audio.encode(np.zeros(int(16000 * seconds), np.float32), 16000, "flac")


def test_a_duration_cap_holds_while_decoding(tmp_path):
    """Two hours of silence in 1.3 MB of FLAC with no length in its header: the cap stops the
    decoder as it passes the limit, so no entry point decodes the whole file first."""
    from voxa.errors import TooLong

    data = silent_flac(7200)
    assert len(data) < 2_000_000 and audio.probe_duration(data) is None
    decoded = 0
    with pytest.raises(TooLong, match="longer than the 60 s limit"):
        for block in audio.stream(data, block_seconds=10, max_seconds=60):
            decoded += block.size
    assert decoded <= 60 * 16000
    with pytest.raises(TooLong):
        audio.decode(data, max_seconds=60)
    with pytest.raises(TooLong):
        audio.decode(np.zeros(16000 * 61, np.float32), max_seconds=60)
    assert audio.decode(silent_flac(60), max_seconds=60).size == 60 * 16000  # at the limit is fine
    got = []
    dec = audio.StreamDecoder(got.append, "flac", max_seconds=30)
    for i in range(0, len(data), 65536):
        try:
            dec.feed(data[i:i + 65536])
        except TooLong:
            break
    with pytest.raises(Exception, match="longer than the 30 s limit"):
        dec.close(10)
    assert sum(x.size for x in got) <= 30 * 16000


def test_g711_is_bit_exact_with_audioop_and_round_trips():
    audioop = pytest.importorskip("audioop")  # gone in Python 3.13: the reference is then missing
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 20000), rng.uniform(-0.01, 0.01, 5000), [0.0, -1.0, 1.0]]).astype(np.float32)
    pcm = audio.to_pcm16(x)
    for law, enc, dec in (("ulaw", audioop.lin2ulaw, audioop.ulaw2lin), ("alaw", audioop.lin2alaw, audioop.alaw2lin)):
        assert audio.g711_encode(x, law) == enc(pcm, 2)
        codes = bytes(range(256))
        assert np.array_equal(audio.g711_decode(codes, law), audio.from_pcm16(dec(codes, 2)))
        tone = (0.5 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype(np.float32)
        assert np.abs(audio.g711_decode(audio.g711_encode(tone, law), law) - tone).max() < 0.02

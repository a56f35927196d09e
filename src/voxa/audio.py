"""Audio in and out: the one place voxa decodes and encodes sound.

Decoding goes through PyAV (FFmpeg's libraries), so anything FFmpeg reads works: wav, flac, mp3,
ogg/opus, m4a/aac, webm, or the audio track of a video. Every input becomes float32 mono at
16 kHz (what Whisper, Silero VAD and the speaker models expect). ``stream()`` yields bounded
blocks, so a multi-hour file never sits in memory whole; ``decode()`` is the convenience that
joins them.

Encoding (``encode`` / ``Encoder``) writes wav, flac, mp3, opus (in Ogg), aac (in ADTS) or raw
16-bit PCM, whole or as a stream of bytes for sending while audio is still being produced.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np

from .errors import AudioError, InputError, OutputError, TooLong

SAMPLE_RATE = 16000

Source = Union[str, os.PathLike, bytes, bytearray, BinaryIO, np.ndarray]

# Truncation check: a container that declares D seconds but yields clearly less is truncated.
# wav/flac/aiff headers count samples exactly; compressed formats often estimate D from the
# bit rate, so they get a loose tolerance (share of D, minimum missing seconds).
_EXACT_LENGTH_FORMATS = {"wav", "flac", "aiff", "w64", "caf"}
_TOLERANCE = {True: (0.999, 0.05), False: (0.9, 0.5)}


def source_name(source: Source) -> str:
    """A short human name for an input, used in messages and output file names."""
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(source, np.ndarray):
        return "<array>"
    return getattr(source, "name", None) if isinstance(getattr(source, "name", None), str) else "<stream>"


def _open_input(source: Source):
    """Validate the input and return what ``av.open`` accepts."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError("<bytes>: empty input (0 bytes)")
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            return sys.stdin.buffer
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{path}: no such file")
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        return str(path)
    if hasattr(source, "read"):
        return source
    raise InputError(f"cannot read audio from a {type(source).__name__}")


def _riff_declared(target) -> float | None:
    """FFmpeg clamps a wav's duration to the file size, hiding truncation: read the RIFF
    header's own data size instead (None when unknown or streamed)."""
    try:
        if isinstance(target, str):
            with open(target, "rb") as f:
                head = f.read(65536)
        elif isinstance(target, io.BytesIO):
            head = target.getvalue()[:65536]
        else:
            return None
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, rate, align = 12, 0, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 24 <= len(head):
            rate = int.from_bytes(head[pos + 12 : pos + 16], "little")
            align = int.from_bytes(head[pos + 20 : pos + 22], "little")
        if cid == b"data":
            if not rate or not align or size in (0, 0xFFFFFFFF):
                return None
            return size / align / rate
        pos += 8 + size + (size & 1)
    return None


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def too_long(name: str, limit: float) -> TooLong:
    return TooLong(f"{name}: the audio is longer than the {limit:g} s limit")


def stream(
    source: Source, sample_rate: int = SAMPLE_RATE, block_seconds: float = 30.0, *, mono: bool = True,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``source`` to float32 mono at ``sample_rate``, yielding blocks of about
    ``block_seconds`` (the last one shorter). Raises AudioError with a one-line reason.
    ``mono=False`` keeps the channels apart: blocks are (channels, samples).
    ``max_seconds``: raise :class:`TooLong` as soon as the decoded audio passes it (a header
    that gives no length, or lies, cannot make voxa decode more)."""
    name = source_name(source)
    if isinstance(source, np.ndarray):
        a = np.asarray(source)
        n = a.shape[-1] if not mono or a.ndim == 1 else max(a.shape)
        if max_seconds is not None and n > max_seconds * sample_rate:
            raise too_long(name, max_seconds)
        if mono:
            yield from _stream_array(source, sample_rate, block_seconds)
        else:  # arrays are (channels, samples), or 1-D mono
            a = np.asarray(source, dtype=np.float32)
            a = a[None] if a.ndim == 1 else a
            step = max(1, int(block_seconds * sample_rate))
            for i in range(0, a.shape[1], step):
                yield a[:, i:i + step]
        return
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    target = _open_input(source)
    block = max(1, int(block_seconds * sample_rate))
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioError(f"{name}: not a readable audio file ({_reason(e)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{name}: has no audio track")
        astream = container.streams.audio[0]
        astream.thread_type = "AUTO"
        declared = _riff_declared(target) or _declared_duration(container, astream)
        exact = bool(set(container.format.name.split(",")) & _EXACT_LENGTH_FORMATS)
        layout = "mono" if mono else astream.layout.name
        resampler = av.AudioResampler(format="flt" if mono else "fltp", layout=layout, rate=sample_rate)
        pending: list[np.ndarray] = []
        pending_n = 0
        total = 0
        try:
            for frame in container.decode(astream):
                frame.pts = None  # let the resampler keep its own clock across gaps
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1) if mono else out.to_ndarray()
                    pending.append(arr)
                    pending_n += arr.shape[-1]
                if limit is not None and total + pending_n > limit:
                    raise too_long(name, max_seconds)
                while pending_n >= block:
                    joined = np.concatenate(pending, axis=-1)
                    yield joined[..., :block]
                    total += block
                    rest = joined[..., block:]
                    pending, pending_n = ([rest], rest.shape[-1]) if rest.shape[-1] else ([], 0)
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1) if mono else out.to_ndarray()
                pending.append(arr)
                pending_n += arr.shape[-1]
            if limit is not None and total + pending_n > limit:
                raise too_long(name, max_seconds)
        except av.error.FFmpegError as e:
            got = (total + pending_n) / sample_rate
            if total + pending_n == 0:
                raise AudioError(f"{name}: corrupt audio, nothing decodable ({_reason(e)})") from None
            raise AudioError(f"{name}: corrupt or truncated audio after {got:.2f} s ({_reason(e)})") from None
        if pending_n:
            yield np.concatenate(pending, axis=-1)
            total += pending_n
    if total == 0:
        raise AudioError(f"{name}: contains no audio (0 samples)")
    got = total / sample_rate
    share, gap = _TOLERANCE[exact]
    if declared is not None and declared - got > gap and got < declared * share:
        raise AudioError(f"{name}: truncated: header says {declared:.2f} s but only {got:.2f} s of audio is present")


def _stream_array(arr: np.ndarray, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """Arrays are taken to be mono float audio at ``sample_rate`` already."""
    a = np.asarray(arr)
    if a.ndim == 2:  # (samples, channels) or (channels, samples): average the short axis
        a = a.mean(axis=int(np.argmin(a.shape)))
    if a.ndim != 1:
        raise InputError(f"audio array must be 1-D mono (got shape {arr.shape})")
    if a.size == 0:
        raise AudioError("<array>: contains no audio (0 samples)")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    block = max(1, int(block_seconds * sample_rate))
    for i in range(0, a.size, block):
        yield a[i : i + block]


def decode(source: Source, sample_rate: int = SAMPLE_RATE, *, mono: bool = True,
           max_seconds: float | None = None) -> np.ndarray:
    """Decode a whole input to one float32 mono array at ``sample_rate`` (``mono=False``: an
    array of shape (channels, samples)); ``max_seconds`` as in :func:`stream`."""
    return np.concatenate(list(stream(source, sample_rate, block_seconds=600.0, mono=mono,
                                      max_seconds=max_seconds)), axis=-1)


def _reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(":")[-1].strip() or type(e).__name__


class Resampler:
    """Streamed sample-rate conversion of float32 mono chunks (FFmpeg's swresample through
    PyAV), keeping filter state across chunks so the joins are seamless. Call it on each
    chunk, then ``flush()`` for the tail."""

    def __init__(self, src_rate: int, dst_rate: int):
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self._r = None if self.src_rate == self.dst_rate else av.AudioResampler(
            format="flt", layout="mono", rate=self.dst_rate)

    def _run(self, frame) -> np.ndarray:
        outs = [f.to_ndarray().reshape(-1) for f in self._r.resample(frame)]
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._r is None or samples.size == 0:
            return samples
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.src_rate
        return self._run(frame)

    def flush(self) -> np.ndarray:
        return np.zeros(0, np.float32) if self._r is None else self._run(None)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample one whole float32 mono clip."""
    r = Resampler(src_rate, dst_rate)
    head = r(samples)
    tail = r.flush()
    return np.concatenate([head, tail]) if tail.size else head


# ------------------------------------------------------------------------------- live input
class PcmDecoder:
    """Raw 16-bit little-endian PCM arriving in arbitrary pieces (a live stream's ``linear16``)
    to float32 mono 16 kHz. Channels are averaged; a sample split across pieces is carried over.
    A WAV header at the very start is read and checked against the declared rate and channels."""

    def __init__(self, sample_rate: int, channels: int = 1):
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._carry = b""
        self._first = True
        self._resampler = Resampler(self.sample_rate, SAMPLE_RATE)

    def __call__(self, data: bytes) -> np.ndarray:
        if self._first and data:
            self._first = False
            if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
                data = self._strip_wav(data)
        data = self._carry + data
        width = 2 * self.channels
        n = len(data) // width * width
        self._carry = data[n:]
        if n == 0:
            return np.zeros(0, np.float32)
        pcm = from_pcm16(data[:n])
        if self.channels > 1:
            pcm = pcm.reshape(-1, self.channels).mean(axis=1)
        return self._resampler(pcm)

    def _strip_wav(self, data: bytes) -> bytes:
        import struct

        pos = 12
        while pos + 8 <= len(data):
            cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
            if cid == b"fmt " and pos + 24 <= len(data):
                fmt, ch, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
                if fmt not in (1, 0xFFFE) or bits != 16:
                    raise AudioError(f"the WAV header says {bits}-bit format {fmt}; linear16 needs 16-bit PCM")
                if rate != self.sample_rate or ch != self.channels:
                    raise AudioError(f"declared sample_rate={self.sample_rate} channels={self.channels} but the "
                                     f"WAV header says {rate} Hz, {ch} channel(s)")
            if cid == b"data":
                return data[pos + 8:]
            pos += 8 + size + (size & 1)
        raise AudioError("a WAV header must arrive whole in the first message")

    def flush(self) -> np.ndarray:
        return self._resampler.flush()


class _Pipe(io.RawIOBase):
    """Bytes fed by one thread, read (blocking) by a decoder in another."""

    def __init__(self, limit: int):
        import threading

        self._buf = bytearray()
        self._closed = False
        self._cond = threading.Condition()
        self._limit = limit

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            if len(self._buf) + len(data) > self._limit:
                raise AudioError("the audio cannot be decoded as fast as it arrives")
            self._buf += data
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def readinto(self, b) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._buf or self._closed)
            n = min(len(b), len(self._buf))
            b[:n] = self._buf[:n]
            del self._buf[:n]
            return n


class StreamDecoder:
    """A container (WebM/Opus from a browser's MediaRecorder, Ogg, MP3, FLAC, WAV...) arriving
    in pieces, decoded by FFmpeg on its own thread as bytes come in. Decoded float32 mono
    16 kHz audio goes to ``on_audio``; a decoding failure is kept in ``error``."""

    def __init__(self, on_audio, fmt: str | None = None, max_buffer: int = 8 << 20,
                 max_seconds: float | None = None):
        import threading

        self._pipe = _Pipe(max_buffer)
        self._on_audio = on_audio
        self._fmt = fmt
        self._limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        self._max_seconds = max_seconds
        self.error: str | None = None
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="voxa-stream-decode", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        if self.error:
            raise AudioError(self.error)
        self._pipe.feed(data)

    def close(self, timeout: float | None = None) -> None:
        """No more bytes: decode the rest and wait for the decoder (raises AudioError on failure)."""
        self._pipe.end()
        self._thread.join(timeout)
        if self.error:
            raise AudioError(self.error)

    def abort(self) -> None:
        """Stop without waiting (the client is gone)."""
        self._pipe.end()

    def _run(self) -> None:
        try:
            with av.open(self._pipe, mode="r", format=self._fmt, metadata_errors="ignore") as container:
                if not container.streams.audio:
                    raise AudioError("the stream has no audio track")
                resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(container.streams.audio[0]):
                    frame.pts = None
                    for out in resampler.resample(frame):
                        self._emit(out.to_ndarray().reshape(-1))
                for out in resampler.resample(None):
                    self._emit(out.to_ndarray().reshape(-1))
        except AudioError as e:
            self.error = str(e)
        except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as e:
            self.error = f"not a readable audio stream ({_reason(e)})"
        finally:
            self._pipe.end()

    def _emit(self, samples: np.ndarray) -> None:
        self.samples += samples.size
        if self._limit is not None and self.samples > self._limit:
            raise too_long("the stream", self._max_seconds)
        self._on_audio(samples)


# ----------------------------------------------------------------------------------------- encode

#: format -> (container, codec, sample format, allowed sample rates or None for any)
FORMATS = {
    "wav": ("wav", "pcm_s16le", "s16", None),
    "flac": ("flac", "flac", "s16", None),
    "mp3": ("mp3", "libmp3lame", "s16p", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "opus": ("ogg", "libopus", "s16", (8000, 12000, 16000, 24000, 48000)),
    "aac": ("adts", "aac", "fltp", None),
    "pcm": (None, None, None, None),
}
MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}


class _Sink(io.RawIOBase):
    """A write-only, non-seekable buffer that an encoder drains as it goes."""

    def __init__(self):
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._chunks.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples (clipped to [-1, 1]) as 16-bit little-endian PCM bytes."""
    return _to_int16(samples).astype("<i2", copy=False).tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """16-bit little-endian PCM bytes (an even number of them) as float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def wav_header(sample_rate: int, n_samples: int | None) -> bytes:
    """A RIFF header; with ``n_samples=None`` the sizes say 'unknown' (streamed wav)."""
    data = 0xFFFFFFFF if n_samples is None else n_samples * 2
    riff = 0xFFFFFFFF if n_samples is None else 36 + data
    return (
        b"RIFF" + riff.to_bytes(4, "little") + b"WAVEfmt "
        + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + sample_rate.to_bytes(4, "little") + (sample_rate * 2).to_bytes(4, "little")
        + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + data.to_bytes(4, "little")
    )


class Encoder:
    """Encode float32 mono audio chunk by chunk: ``write()`` returns the bytes ready so far,
    ``close()`` the rest. wav and pcm are written directly; the others go through FFmpeg."""

    def __init__(self, fmt: str, sample_rate: int):
        if fmt not in FORMATS:
            raise InputError(f"unknown audio format {fmt!r}; choose one of {', '.join(FORMATS)}")
        container_fmt, codec, sample_fmt, rates = FORMATS[fmt]
        self.fmt, self.sample_rate = fmt, sample_rate
        self.out_rate = sample_rate
        if rates and sample_rate not in rates:
            self.out_rate = min(rates, key=lambda r: (r < sample_rate, abs(r - sample_rate)))
        self._started = False
        self.samples = 0  # written so far, at ``sample_rate``
        self._container = None
        if fmt in ("wav", "pcm"):
            return
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container_fmt)
        self._stream = self._container.add_stream(codec, rate=self.out_rate, layout="mono")
        if fmt in ("mp3", "opus", "aac"):
            self._stream.bit_rate = 64000 if fmt != "aac" else 96000
        self._resampler = av.AudioResampler(format=sample_fmt, layout="mono", rate=self.out_rate)
        self._pts = 0

    def write(self, samples: np.ndarray) -> bytes:
        pcm = _to_int16(samples)
        self.samples += pcm.size
        if self.fmt == "pcm":
            return pcm.tobytes()
        if self.fmt == "wav":
            head = b""
            if not self._started:
                head = wav_header(self.sample_rate, None)
                self._started = True
            return head + pcm.tobytes()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        return self._encode(frame)

    def _encode(self, frame) -> bytes:
        for rf in self._resampler.resample(frame):
            rf.pts = self._pts
            self._pts += rf.samples
            for packet in self._stream.encode(rf):
                self._container.mux(packet)
        return self._sink.take()

    def close(self) -> bytes:
        if self.fmt == "pcm":
            return b""
        if self.fmt == "wav":
            return b"" if self._started else wav_header(self.sample_rate, 0)
        out = self._encode(None)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return out + self._sink.take()


def finish_wav(f, sample_rate: int, n_samples: int) -> None:
    """Replace a streamed wav's 'unknown size' header with the real sizes (seekable files)."""
    f.seek(0)
    f.write(wav_header(sample_rate, n_samples))
    f.seek(0, os.SEEK_END)


def encode(samples: np.ndarray, sample_rate: int, fmt: str = "wav") -> bytes:
    """Encode a whole clip. wav gets exact sizes in its header."""
    if fmt == "wav":
        pcm = _to_int16(samples)
        return wav_header(sample_rate, pcm.size) + pcm.tobytes()
    enc = Encoder(fmt, sample_rate)
    return enc.write(samples) + enc.close()


def write(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, fmt: str | None = None) -> Path:
    """Encode to a file; the format defaults to the file's extension."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower() or "wav"
    data = encode(samples, sample_rate, fmt)
    try:
        path.write_bytes(data)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror})") from None
    return path


def probe_duration(source: Source) -> float | None:
    """Duration in seconds from the container's header, without decoding; None if unknown."""
    if isinstance(source, np.ndarray):
        return source.shape[0] / SAMPLE_RATE
    if isinstance(source, (bytes, bytearray)):
        target = io.BytesIO(source)
    elif not isinstance(source, (str, os.PathLike)) or str(source) == "-":
        return None
    else:
        target = str(source)
    try:
        with av.open(target, metadata_errors="ignore") as c:
            if not c.streams.audio:
                return None
            return _declared_duration(c, c.streams.audio[0])
    except Exception:  # noqa: BLE001 - probing is best effort; decode() reports the real error
        return None


# --------------------------------------------------------------------------- G.711 (telephony)
_ULAW_SEG = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _g711_tables() -> tuple[np.ndarray, np.ndarray]:
    u = ~np.arange(256, dtype=np.uint8)
    mag = (((u & 0x0F).astype(np.int32) << 3) + 0x84) << ((u >> 4) & 0x07)
    ulaw = np.where(u & 0x80, 0x84 - mag, mag - 0x84).astype(np.float32) / 32768.0
    a = np.arange(256, dtype=np.uint8) ^ 0x55
    exp, man = (a >> 4) & 0x07, (a & 0x0F).astype(np.int32)
    mag = np.where(exp == 0, (man << 4) + 8, ((man << 4) + 0x108) << np.maximum(exp.astype(np.int32) - 1, 0))
    alaw = np.where(a & 0x80, mag, -mag).astype(np.float32) / 32768.0
    return ulaw, alaw


ULAW, ALAW = _g711_tables()


def g711_decode(data: bytes, law: str = "ulaw") -> np.ndarray:
    """G.711 μ-law (``ulaw``) or A-law (``alaw``) bytes as float32 samples (at the stream's rate,
    8 kHz on telephone lines); bit-exact with CPython's former audioop."""
    return (ULAW if law == "ulaw" else ALAW)[np.frombuffer(data, np.uint8)]


def g711_encode(samples: np.ndarray, law: str = "ulaw") -> bytes:
    """Float samples (clipped to [-1, 1]) as G.711 μ-law or A-law bytes, as audioop encoded them."""
    x = _to_int16(np.asarray(samples, np.float32)).astype(np.int32)
    if law == "ulaw":  # 14-bit, bias 33
        x >>= 2
        mask = np.where(x < 0, 0x7F, 0xFF)
        x = np.minimum(np.abs(x), 8159) + 33
        seg = np.searchsorted(_ULAW_SEG, x)
        code = np.where(seg >= 8, 0x7F, (seg << 4) | ((x >> (np.minimum(seg, 7) + 1)) & 0x0F))
    else:  # 13-bit
        x >>= 3
        mask = np.where(x >= 0, 0xD5, 0x55)
        x = np.where(x >= 0, x, -x - 1)
        seg = np.searchsorted(_ALAW_SEG, x)
        code = np.where(seg >= 8, 0x7F, (seg << 4) | (np.where(seg < 2, x >> 1, x >> np.clip(seg, 1, 7)) & 0x0F))
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()

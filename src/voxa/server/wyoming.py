"""Wyoming, Home Assistant's protocol for voice services: voxa as its speech-to-text, text-to-speech
and wake-word service over one TCP port (``voxa serve --wyoming 10300``, or ``voxa wyoming``).

Built on the ``wyoming`` package (MIT, the protocol's reference implementation) for the event
types and framing, so what Home Assistant and the ``wyoming`` client send is read exactly as
they write it. One connection is one :class:`Handler`; events (``describe``, ``transcribe``,
``detect``, ``synthesize``...) go to a method each:

- ``describe`` → ``info``: the Whisper models that are installed, the voices that are installed,
  the wake words; streaming transcripts and streaming synthesis are announced.
- ``transcribe`` then ``audio-start``/``audio-chunk``…/``audio-stop`` → ``transcript``. While the
  audio arrives voxa's live recogniser (:mod:`voxa.streaming`) decodes it: ``voice-started`` and
  ``voice-stopped`` as it hears speech begin and end, ``transcript-start``/``transcript-chunk``
  for each final, so at ``audio-stop`` only the last words remain to decode, then
  ``transcript-stop`` and ``transcript`` (the whole text).
- ``synthesize`` → ``audio-start``, ``audio-chunk``s, ``audio-stop``; streaming
  ``synthesize-start``/``synthesize-chunk``…/``synthesize-stop``: each sentence is spoken as soon
  as it is complete (its own ``audio-start``…``audio-stop``), then ``synthesize-stopped``; the
  ``synthesize`` a streaming client also sends is ignored, as wyoming-piper does. Every synthesis
  is watermarked and audited (origin ``wyoming``).
- ``detect`` then audio → ``detection`` (name, milliseconds into the stream) for each wake word
  heard, ``not-detected`` at ``audio-stop`` if none was.

Limits: an event's JSON header, data and payload are bounded before they are read (the
``wyoming`` reader trusts the lengths it is sent); audio per stream is capped
(``max_stream_s``, and twice that in wall-clock time); a client sending faster than the decoder
keeps up waits (30 s of backlog at most); a connection silent for ``idle_timeout`` is closed; live transcriptions
count against ``max_streams``. Wyoming has no authentication: a bind that is not loopback is
refused unless the addresses allowed to connect are named (``--wyoming-allow``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, AsrModel, AsrProgram, Describe, Info, TtsProgram, TtsVoice, WakeModel, WakeProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detect, Detection, NotDetected

from .. import __version__
from ..audio import PcmDecoder
from ..errors import VoxaError

log = logging.getLogger("voxa.server.wyoming")

PORT = 10300
MAX_HEADER = 64 * 1024  # one event's JSON line
MAX_DATA = 64 * 1024  # its extra JSON data
MAX_PAYLOAD = 1 << 20  # its binary payload (an audio chunk is a few KB)
MAX_TEXT = 20_000  # characters of one (streamed) synthesis
CHUNK_SAMPLES = 1024  # per audio-chunk sent
VOXA = Attribution(name="voxa", url="https://github.com/voxa-speech/voxa")


@dataclass
class Settings:
    """What the Wyoming service offers (from ``ServerConfig`` and the command line)."""

    stream_model: str = "tiny.en"
    voice: str | None = None  # voxa's default voice
    max_stream_s: float = 3600.0
    max_streams: int = 16
    idle_timeout_s: float = 300.0
    # beam for a command's finals: 5, as wyoming-faster-whisper; on 20 LibriSpeech commands greedy
    # (the live default) gave WER 22.8% against 18.7%, and beam 5 still had the text ready at
    # audio-stop (benchmarks/wyoming_latency.py)
    final_beam: int | None = 5
    endpointing_ms: int | None = None  # pause that ends a piece of a command (None: the recogniser's default)
    allow: tuple[str, ...] = ()  # client addresses or networks allowed besides loopback
    scheduler_of: object = None  # engine -> its live-decoding Scheduler (the HTTP server's, when shared)
    # the live transcriptions open; inside `voxa serve`, the HTTP server's own set, so /v1/listen,
    # /v1/realtime and Wyoming share one max_streams
    streams: set = field(default_factory=set)


def allowed(peer: str | None, allow: tuple[str, ...]) -> bool:
    """May ``peer`` connect: loopback always, else only an address in ``allow`` (``*`` for any)."""
    if "*" in allow:
        return True
    try:
        ip = ipaddress.ip_address((peer or "").split("%")[0])
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    return any(ip in ipaddress.ip_network(a, strict=False) for a in allow)


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """One event, or None at the end of the stream. Raises ValueError for a malformed or
    oversized one, before reading a body it announced."""
    line = await reader.readline()
    if not line:
        return None
    head = json.loads(line)
    if not isinstance(head, dict) or not isinstance(head.get("type"), str):
        raise ValueError("an event is a JSON object with a type")
    data = head.get("data") or {}
    n_data, n_payload = head.get("data_length") or 0, head.get("payload_length") or 0
    if not isinstance(n_data, int) or not isinstance(n_payload, int) or n_data < 0 or n_payload < 0:
        raise ValueError("data_length and payload_length must be byte counts")
    if n_data > MAX_DATA or n_payload > MAX_PAYLOAD:
        raise ValueError(f"an event's data is limited to {MAX_DATA} bytes and its payload to {MAX_PAYLOAD}")
    if n_data:
        more = json.loads(await reader.readexactly(n_data))
        if not isinstance(more, dict):
            raise ValueError("an event's data must be a JSON object")
        data = {**data, **more}
    payload = await reader.readexactly(n_payload) if n_payload else None
    return Event(type=head["type"], data=data, payload=payload)


def info(settings: Settings) -> Info:
    """What this service offers, truthfully: only what is installed here."""
    from .. import registry, wake
    from ..asr import languages
    from ..tts import voices

    asr = []
    for m in registry.list_models("asr"):
        if m["state"] in ("ready", "installed"):
            langs = ["en"] if not m.get("multilingual") else languages()
            asr.append(AsrModel(name=m["name"], description=m["description"], attribution=VOXA, installed=True,
                                languages=langs, version=None))
    tts = [TtsVoice(name=v.id, description=v.description or v.id, attribution=VOXA, installed=True,
                    languages=[v.language], version=None) for v in voices() if v.installed]
    wakes = [WakeModel(name=w["name"], description=f"{w['phrase']} ({w['engine']})", phrase=w["phrase"],
                       attribution=VOXA, installed=w["installed"], languages=["en"], version=None)
             for w in wake.words() if w["installed"]]
    return Info(
        asr=[AsrProgram(name="voxa", description="Whisper (CTranslate2), streamed", attribution=VOXA,
                        installed=True, version=__version__, models=asr, supports_transcript_streaming=True)],
        tts=[TtsProgram(name="voxa", description="voxa voices, watermarked", attribution=VOXA, installed=True,
                        version=__version__, voices=tts, supports_synthesize_streaming=True)],
        wake=[WakeProgram(name="voxa", description="microWakeWord and openWakeWord", attribution=VOXA,
                          installed=bool(wakes), version=__version__, models=wakes)] if wakes else [])


class Handler(AsyncEventHandler):
    """One Wyoming connection."""

    def __init__(self, settings: Settings, reader, writer):
        super().__init__(reader, writer)
        self.s = settings
        self.peer = (writer.get_extra_info("peername") or ("?",))[0]
        self.mode: str | None = None  # "transcribe" or "detect": what the audio that follows is for
        self.request: Transcribe | Detect | None = None
        self.decoder: PcmDecoder | None = None
        self.rec = None  # live recogniser of a transcription
        self.detector = None  # wake-word detector of a detection
        self.heard = 0.0  # seconds of audio in this stream
        self.opened = 0.0  # when it started (monotonic)
        self.finals: list[str] = []
        self.started = False  # transcript-start sent
        self.detected = False
        self.events: asyncio.Queue | None = None
        self.pump: asyncio.Task | None = None
        self.live = None  # a streamed synthesis: (voice, tts.Live, text not yet spoken, sentences sent)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        if not allowed(self.peer, self.s.allow):
            log.warning("wyoming: refused a connection from %s (not in --wyoming-allow)", self.peer)
            await self.write_event(Error(text="this address may not use the service", code="forbidden").event())
            self.writer.close()
            return
        try:
            while True:
                try:
                    event = await asyncio.wait_for(read_event(self.reader), self.s.idle_timeout_s)
                except (ValueError, UnicodeDecodeError, asyncio.LimitOverrunError) as e:
                    await self._error(f"malformed event: {e}", "bad_event")
                    break
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    break
                if event is None or not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        try:
            if Describe.is_type(kind):
                await self.write_event(info(self.s).event())
            elif Ping.is_type(kind):
                await self.write_event(Pong(text=Ping.from_event(event).text).event())
            elif Transcribe.is_type(kind):
                await self._reset()
                self.mode, self.request = "transcribe", Transcribe.from_event(event)
            elif Detect.is_type(kind):
                await self._reset()
                self.mode, self.request = "detect", Detect.from_event(event)
            elif AudioStart.is_type(kind):
                await self._audio_start(AudioStart.from_event(event))
            elif AudioChunk.is_type(kind):
                await self._audio_chunk(AudioChunk.from_event(event))
            elif AudioStop.is_type(kind):
                await self._audio_stop()
            elif Synthesize.is_type(kind):
                if self.live is None:  # a streaming client also sends the whole text: ignored then
                    await self._synthesize(Synthesize.from_event(event))
            elif SynthesizeStart.is_type(kind):
                await self._synth_start(SynthesizeStart.from_event(event))
            elif SynthesizeChunk.is_type(kind):
                await self._synth_chunk(SynthesizeChunk.from_event(event).text)
            elif SynthesizeStop.is_type(kind):
                await self._synth_stop()
            else:
                log.debug("wyoming: ignored event %r", kind)
        except VoxaError as e:
            await self._error(str(e), type(e).__name__)
            await self._reset()
        except (KeyError, TypeError, ValueError) as e:
            await self._error(f"malformed {kind} event: {e}", "bad_event")
            await self._reset()
        return True

    async def disconnect(self) -> None:
        await self._reset()

    async def _error(self, text: str, code: str) -> None:
        log.info("wyoming %s: %s", self.peer, text)
        try:
            await self.write_event(Error(text=text, code=code).event())
        except ConnectionError:
            pass

    async def _reset(self) -> None:
        """Drop the audio stream in progress (a new request, an error, or the client left)."""
        if self.rec is not None:
            self.rec.abort()
            self.s.streams.discard(self)
        if self.detector is not None:
            self.detector.close()
        if self.pump is not None:
            self.pump.cancel()
        if self.live is not None:
            self.live[1].close()
        self.mode = self.request = self.decoder = self.rec = self.detector = self.pump = self.live = None
        self.heard, self.finals, self.started, self.detected = 0.0, [], False, False

    # ------------------------------------------------------------------ audio in
    async def _audio_start(self, start: AudioStart) -> None:
        if self.mode is None:
            raise _Bad("audio-start before transcribe or detect")
        if start.width != 2 or not 1 <= start.channels <= 8 or not 8000 <= start.rate <= 192000:
            raise _Bad(f"audio must be 16-bit PCM, 1-8 channels, 8-192 kHz (got width {start.width}, "
                       f"{start.channels} channels, {start.rate} Hz)")
        self.decoder = PcmDecoder(start.rate, start.channels)
        self.opened = time.monotonic()
        if self.mode == "transcribe":
            await self._open_recogniser()
        else:
            await self._open_detector()

    async def _audio_chunk(self, chunk: AudioChunk) -> None:
        if self.decoder is None:
            if self.mode is None:
                return  # audio nobody asked about (a satellite between requests)
            await self._audio_start(AudioStart(rate=chunk.rate, width=chunk.width, channels=chunk.channels))
        samples = self.decoder(chunk.audio)
        self.heard += samples.size / 16000
        if self.heard > self.s.max_stream_s:
            raise _Bad(f"the audio stream is over the {self.s.max_stream_s:g} s limit")
        if time.monotonic() - self.opened > 2 * self.s.max_stream_s:
            raise _Bad(f"the audio stream has been open for over {2 * self.s.max_stream_s:g} s")
        if not samples.size:
            return
        if self.rec is not None:
            await asyncio.to_thread(self.rec.push, samples)
            if self.rec.error is not None:
                raise _Bad(f"recognition failed ({self.rec.error})")
            while self.rec is not None and self.rec.backlog_s > 30.0:  # a client faster than the decoder waits
                await asyncio.sleep(0.05)
        elif self.detector is not None:
            for hit in await asyncio.to_thread(self.detector.push, samples):
                self.detected = True
                await self.write_event(Detection(name=hit.word, timestamp=int(hit.time * 1000)).event())

    async def _audio_stop(self) -> None:
        if self.rec is not None:
            tail = self.decoder.flush() if self.decoder is not None else np.zeros(0, np.float32)
            if tail.size:
                await asyncio.to_thread(self.rec.push, tail)
            rec, self.rec = self.rec, None
            self.s.streams.discard(self)
            await asyncio.to_thread(rec.close, 60.0)
            self.events.put_nowait(None)
            await self.pump  # every final is out
            text = " ".join(t for t in self.finals if t).strip()
            if not self.started:
                await self.write_event(TranscriptStart(language=rec.language).event())
            await self.write_event(TranscriptStop().event())
            await self.write_event(Transcript(text=text, language=rec.language).event())
        elif self.detector is not None and not self.detected:
            await self.write_event(NotDetected().event())
        elif self.mode is None:
            return
        await self._reset()

    async def _open_recogniser(self) -> None:
        from ..asr import load_model
        from ..registry import known
        from ..streaming import Recognizer, StreamOptions, scheduler_for

        req = self.request
        name = known(req.name or self.s.stream_model, "asr") or known(self.s.stream_model, "asr")
        if len(self.s.streams) >= self.s.max_streams:
            raise _Bad(f"the server is busy: {self.s.max_streams} live transcriptions already open")
        engine = await asyncio.to_thread(load_model, name)
        language = (req.language or "").split("-")[0].lower() or None
        try:
            engine.check_options(language=language)
        except VoxaError as e:
            raise _Bad(str(e)) from None
        scheduler = (self.s.scheduler_of or scheduler_for)(engine)
        loop, self.events = asyncio.get_running_loop(), asyncio.Queue()
        opts = StreamOptions(language=language, interim_results=False, vad_events=True, final_beam=self.s.final_beam)
        if self.s.endpointing_ms is not None:
            opts.endpointing_ms = self.s.endpointing_ms
        self.rec = Recognizer(scheduler, lambda e: loop.call_soon_threadsafe(self.events.put_nowait, e), opts)
        self.s.streams.add(self)
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        """The recogniser's events, in order, as Wyoming events."""
        from ..types import SpeechStarted, StreamResult

        while (e := await self.events.get()) is not None:
            if isinstance(e, SpeechStarted):
                await self.write_event(VoiceStarted(timestamp=int(e.timestamp * 1000)).event())
            elif isinstance(e, StreamResult) and e.is_final:
                if e.text:
                    if not self.started:
                        self.started = True
                        await self.write_event(TranscriptStart(language=self.rec.language if self.rec else None).event())
                    self.finals.append(e.text)
                    await self.write_event(TranscriptChunk(text=(" " if len(self.finals) > 1 else "") + e.text).event())
                if e.speech_final:
                    await self.write_event(VoiceStopped(timestamp=int((e.start + e.duration) * 1000)).event())

    async def _open_detector(self) -> None:
        from .. import wake

        names = [n for n in (self.request.names or []) if n] or [w for w in wake.names() if ":" not in w]
        self.detector = await asyncio.to_thread(wake.WakeDetector, names)

    # ------------------------------------------------------------------ speech out
    def _voice(self, voice):
        from ..tts import load_voice
        from ..tts.engine import resolve

        name = voice.name if voice is not None and voice.name else None
        language = voice.language if voice is not None and not name else None
        if name is None and language:
            from ..tts import voices

            found = [v for v in voices(language=language) if v.installed]
            if not found:
                raise _Bad(f"no installed voice speaks {language!r}")
            name = found[0].id
        name = name or self.s.voice
        if name is not None and not resolve(name).installed:
            raise _Bad(f"voice {name!r} is not installed here")
        return load_voice(name)

    async def _send_audio(self, audio: np.ndarray, rate: int, *, start: bool, stop: bool) -> None:
        from ..audio import to_pcm16

        if start:
            await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        pcm = to_pcm16(audio)
        step = 2 * CHUNK_SAMPLES
        for i in range(0, len(pcm), step):
            await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + step]).event())
        if stop:
            await self.write_event(AudioStop().event())

    async def _synthesize(self, req: Synthesize) -> None:
        text = " ".join((req.text or "").split())
        if len(text) > MAX_TEXT:
            raise _Bad(f"the text is over {MAX_TEXT} characters")
        voice = await asyncio.to_thread(self._voice, req.voice)
        synthesis = voice.stream(text, origin="wyoming", actor=f"wyoming:{self.peer}")
        await self.write_event(AudioStart(rate=voice.sample_rate, width=2, channels=1).event())
        it = iter(synthesis)
        while (chunk := await asyncio.to_thread(next, it, None)) is not None:
            await self._send_audio(chunk.audio, chunk.sample_rate, start=False, stop=False)
        await self.write_event(AudioStop().event())

    async def _synth_start(self, req: SynthesizeStart) -> None:
        await self._reset()
        voice = await asyncio.to_thread(self._voice, req.voice)
        self.live = [voice, voice.open(origin="wyoming", actor=f"wyoming:{self.peer}"), "", 0]

    async def _synth_chunk(self, text: str) -> None:
        from ..tts.text import sentences

        if self.live is None:
            raise _Bad("synthesize-chunk before synthesize-start")
        self.live[2] += text
        self.live[3] += len(text)
        if self.live[3] > MAX_TEXT:
            raise _Bad(f"the streamed text is over {MAX_TEXT} characters")
        parts = list(sentences(self.live[2], self.live[0].info.language))
        if len(parts) > 1:  # every sentence but the last is complete: speak them now
            done = self.live[2][:self.live[2].rindex(parts[-1])] if parts[-1] in self.live[2] else ""
            if done.strip():
                self.live[2] = self.live[2][len(done):]
                await self._say(done)

    async def _say(self, text: str, *, last: bool = False) -> None:
        live = self.live[1]
        audio = await asyncio.to_thread(live.say, text)
        if last:
            audio = np.concatenate([audio, live.finish()])
        if audio.size:
            await self._send_audio(audio, live.release.sample_rate, start=True, stop=True)

    async def _synth_stop(self) -> None:
        if self.live is None:
            raise _Bad("synthesize-stop before synthesize-start")
        await self._say(self.live[2], last=True)
        self.live[1].close()
        self.live = None
        await self.write_event(SynthesizeStopped().event())


class _Bad(VoxaError):
    """A request this service cannot take (sent back as a Wyoming error)."""


def check_bind(host: str, allow: tuple[str, ...]) -> None:
    """Wyoming has no keys: a bind other machines can reach needs the addresses allowed named."""
    from .config import is_loopback

    if not is_loopback(host) and not allow:
        raise VoxaError(f"refusing to serve Wyoming on {host} without --wyoming-allow ADDRESS (Wyoming has no "
                        "authentication: name Home Assistant's address, a network such as 192.168.1.0/24, or *)")
    for a in allow:
        if a != "*":
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError:
                raise VoxaError(f"--wyoming-allow takes addresses or networks, not {a!r}") from None


def parse_address(spec: str) -> tuple[str, int]:
    """``10300``, ``0.0.0.0:10300`` or ``tcp://host:port`` → (host, port)."""
    text = spec.strip().removeprefix("tcp://")
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise VoxaError(f"--wyoming takes [HOST:]PORT, not {spec!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


async def start(settings: Settings, host: str, port: int, *, zeroconf: bool = False):
    """Start serving on ``host:port`` in the running event loop; returns the asyncio server."""
    server = await asyncio.start_server(lambda r, w: Handler(settings, r, w).run(), host=host, port=port,
                                        limit=MAX_HEADER)
    log.info("Wyoming on tcp://%s:%d", host, port)
    if zeroconf:
        try:
            from wyoming.zeroconf import HomeAssistantZeroconf
        except ImportError:
            server.close()
            raise VoxaError("--zeroconf needs the zeroconf package: pip install zeroconf") from None
        announce = HomeAssistantZeroconf(port=port, name="voxa", host=None if host in ("0.0.0.0", "::", "") else host)
        await announce.register_server()
        server.voxa_zeroconf = announce  # kept alive as long as the server
    return server


async def serve_forever(settings: Settings, host: str, port: int, *, zeroconf: bool = False) -> None:
    server = await start(settings, host, port, zeroconf=zeroconf)
    async with server:
        await server.serve_forever()


def settings_from(config, **kw) -> Settings:
    """The Wyoming settings that follow a ``ServerConfig``."""
    return Settings(stream_model=config.stream_model, max_stream_s=config.max_stream_s,
                    max_streams=config.max_streams, **kw)


__all__ = ["Handler", "Settings", "info", "read_event", "start", "serve_forever", "check_bind", "parse_address",
           "allowed", "PORT"]

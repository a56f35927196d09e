"""Speech synthesis: text -> sentences -> (English normalisation) -> engine -> output path.

    >>> import voxa
    >>> audio, rate = voxa.speak("It costs $9.99.")            # hibari's bundled voice
    >>> for chunk in voxa.speak_stream(long_text, voice="piper:joe"):
    ...     play(chunk.audio)                                   # one sentence at a time
    >>> voice = voxa.load_voice("espeak:de", speed=1.2)        # reuse: the model loads once
    >>> speech = await voice.aspeak("Guten Tag.")              # asyncio: runs off the event loop

Engines: hibari (default, Apache-2.0), Piper (optional GPL-3.0 extra) and espeak-ng (a separate
program, 100+ languages); see :mod:`voxa.tts.engine`. Sentences come from pysbd
(:mod:`voxa.tts.text`); English numbers, money, dates and abbreviations are written out by
:mod:`voxa.tts.normalize` before any engine sees them. Every chunk leaves through
:class:`voxa.output.Release`, the one output path for synthetic audio.
"""

from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Iterator

import numpy as np

from .. import output
from ..audio import resample
from ..errors import InputError
from ..types import Speech, SpeechChunk, VoiceInfo
from .engine import all_voices, get_engine, resolve
from .normalize import normalize
from .normalize import warm as warm_normalizer
from .text import clean, sentences, speakable

__all__ = ["Voice", "Live", "load_voice", "speak", "speak_stream", "aspeak", "voices", "SpeechStream"]

MIN_RATE, MAX_RATE = 8000, 48000


class Voice:
    """One voice of one engine, with its settings: build once, speak many times (thread-safe)."""

    consent_id: str | None = None  # set on a cloned voice: every synthesis is audited with it

    def __init__(self, voice: str | None = None, *, engine: str | None = None,
                 language: str | None = None, **settings):
        self.info: VoiceInfo = resolve(voice, engine, language)
        self.engine = get_engine(self.info.engine)
        self.settings = self.engine.check_settings(settings)
        self.engine.load(self.info)
        self.english = self.info.language.lower().startswith("en")
        if self.english:
            warm_normalizer()

    @classmethod
    def bound(cls, engine, info: VoiceInfo, *, consent_id: str) -> "Voice":
        """A voice of an engine outside the registry (a clone, see :mod:`voxa.tts.clone`)."""
        self = cls.__new__(cls)
        self.info, self.engine, self.settings = info, engine, {}
        self.english = info.language.lower().startswith("en")
        self.consent_id = consent_id
        return self

    def __repr__(self) -> str:
        return f"Voice({self.info.id!r}, {self.settings})"

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    def stream(self, text: str, *, sample_rate: int | None = None, origin: str = "api",
               actor: str | None = None, **settings) -> "Synthesis":
        """Audio sentence by sentence. Input is checked first; then the synthesis is opened
        (audited, its watermark payload fixed: ``.release.payload``) before any audio is made."""
        opts = self.settings | self.engine.check_settings(settings)
        rate = _check_rate(sample_rate) or self.sample_rate
        body = _check_text(text)
        release = output.Release(engine=self.info.engine, voice=self.info.id, text=body, sample_rate=rate,
                                 settings=dict(opts), origin=origin, actor=actor, consent_id=self.consent_id)
        return Synthesis(release, self._chunks(release, body, rate, opts))

    def _chunks(self, release: output.Release, body: str, rate: int, opts: dict) -> Iterator[SpeechChunk]:
        index = 0
        try:
            todo = [(s, normalize(s) if self.english else s) for s in sentences(body, self.info.language)]
            todo = [(written, spoken) for written, spoken in todo if speakable(spoken)]
            for n, (sentence, spoken) in enumerate(todo):
                # each sentence is resampled whole: chunks join exactly into speak()'s audio
                pcm = self._render(release, spoken, opts)
                if n == len(todo) - 1:  # the last sentence also carries what the watermark held back
                    pcm = np.concatenate([pcm, release.finish()])
                if pcm.size:
                    yield SpeechChunk(pcm, rate, sentence, index, release.id)
                    index += 1
        finally:
            release.close()

    def _render(self, release: output.Release, spoken: str, opts: dict) -> np.ndarray:
        """The one place an engine is called: its audio goes straight into the release."""
        return release(resample(self.engine.synthesize(spoken, self.info, opts), self.sample_rate,
                                release.sample_rate))

    def speak(self, text: str, *, sample_rate: int | None = None, origin: str = "api", actor: str | None = None,
              **settings) -> Speech:
        """The whole text as one clip (the joined stream)."""
        rate = _check_rate(sample_rate) or self.sample_rate
        synthesis = self.stream(text, sample_rate=rate, origin=origin, actor=actor, **settings)
        parts = [chunk.audio for chunk in synthesis]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return Speech(audio, rate, self.info.id, synthesis.release.id, synthesis.release.payload)

    async def aspeak(self, text: str, **kw) -> Speech:
        return await asyncio.to_thread(self.speak, text, **kw)

    def astream(self, text: str, **kw) -> "SpeechStream":
        return SpeechStream(self.stream(text, **kw))

    def open(self, *, sample_rate: int | None = None, origin: str = "agent", actor: str | None = None,
             **settings) -> "Live":
        """A synthesis whose text is not known up front: a voice agent's answer, spoken sentence
        by sentence as the language model writes it. One audit record and one watermark payload
        for the whole answer; the text is logged when it is closed."""
        opts = self.settings | self.engine.check_settings(settings)
        rate = _check_rate(sample_rate) or self.sample_rate
        release = output.Release(engine=self.info.engine, voice=self.info.id, text=None, sample_rate=rate,
                                 settings=dict(opts), origin=origin, actor=actor, consent_id=self.consent_id)
        return Live(self, release, opts)


class Synthesis:
    """The chunks of one synthesis (an iterator), with its :class:`voxa.output.Release`:
    ``.release.payload`` is the watermark payload and audit record number, known before the
    first chunk (the server sends it as a header)."""

    def __init__(self, release: output.Release, chunks: Iterator[SpeechChunk]):
        self.release, self._chunks = release, chunks

    def __iter__(self) -> Iterator[SpeechChunk]:
        return self

    def __next__(self) -> SpeechChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()
        self.release.close()


class Live:
    """An open synthesis (:meth:`Voice.open`): ``say`` each piece of text as it comes, then
    ``finish`` (what the watermark still holds) and ``close``. Not for use by two threads at once."""

    def __init__(self, voice: Voice, release: output.Release, opts: dict):
        self.voice, self.release, self._opts = voice, release, opts

    @property
    def payload(self) -> int:
        return self.release.payload

    def say(self, text: str) -> np.ndarray:
        """The audio of ``text`` (float32 at the release's rate; empty if nothing is speakable)."""
        v, parts = self.voice, []
        body = clean(text)
        for sentence in sentences(body, v.info.language) if body else []:
            spoken = normalize(sentence) if v.english else sentence
            if speakable(spoken):
                parts.append(v._render(self.release, spoken, self._opts))
        if parts:
            self.release.said.append(body)
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def finish(self) -> np.ndarray:
        return self.release.finish()

    def close(self) -> None:
        self.release.close()


class SpeechStream:
    """Chunks of a synthesis, for ``for`` and ``async for`` alike. Under asyncio each chunk is
    synthesized in a worker thread, so the event loop keeps running."""

    def __init__(self, chunks: Iterator[SpeechChunk]):
        self._chunks = chunks
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[SpeechChunk]:
        return self

    def __next__(self) -> SpeechChunk:
        with self._lock:
            return next(self._chunks)

    def __aiter__(self) -> AsyncIterator[SpeechChunk]:
        return self

    async def __anext__(self) -> SpeechChunk:
        chunk = await asyncio.to_thread(self._next_or_none)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def _next_or_none(self) -> SpeechChunk | None:
        with self._lock:
            return next(self._chunks, None)

    def close(self) -> None:
        with self._lock:
            self._chunks.close()


def _check_text(text) -> str:
    body = clean(text)  # refuses non-strings
    if not body:
        raise InputError("text is empty")
    if not speakable(body):
        raise InputError("nothing to say: the text has no letters or digits")
    return body


def _check_rate(rate) -> int | None:
    if rate is None:
        return None
    if not isinstance(rate, (int, np.integer)) or not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"sample rate must be an integer from {MIN_RATE} to {MAX_RATE} Hz, not {rate!r}")
    return int(rate)


_VOICES: dict[tuple, Voice] = {}
_VOICES_LOCK = threading.Lock()


def load_voice(voice: str | None = None, *, engine: str | None = None, language: str | None = None,
               **settings) -> Voice:
    """A shared :class:`Voice` per (voice, engine, language, settings)."""
    key = (voice, engine, language, tuple(sorted(settings.items())))
    with _VOICES_LOCK:
        if key not in _VOICES:
            _VOICES[key] = Voice(voice, engine=engine, language=language, **settings)
        return _VOICES[key]


def speak(text: str, voice: str | None = None, *, engine: str | None = None, language: str | None = None,
          sample_rate: int | None = None, **settings) -> Speech:
    """Synthesize ``text``; returns :class:`Speech` (unpacks as ``audio, sample_rate``)."""
    return load_voice(voice, engine=engine, language=language).speak(text, sample_rate=sample_rate, **settings)


def speak_stream(text: str, voice: str | None = None, *, engine: str | None = None,
                 language: str | None = None, sample_rate: int | None = None, **settings) -> SpeechStream:
    """Synthesize sentence by sentence; iterate (or ``async for``) over :class:`SpeechChunk`."""
    v = load_voice(voice, engine=engine, language=language)
    return SpeechStream(v.stream(text, sample_rate=sample_rate, **settings))


async def aspeak(text: str, voice: str | None = None, **kw) -> Speech:
    """:func:`speak` for asyncio: synthesis runs in a worker thread."""
    return await asyncio.to_thread(speak, text, voice, **kw)


def voices(engine: str | None = None, language: str | None = None) -> list[VoiceInfo]:
    """Every voice voxa knows (installed or not), optionally for one engine or language."""
    from .engine import _lang_matches

    found = all_voices(engine)
    return [v for v in found if not language or _lang_matches(language, v.language)]

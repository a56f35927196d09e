"""Shared types, used by every stage (ASR, TTS, streaming, diarization, server, CLI).

Plain dataclasses: cheap to build, easy to turn into JSON with ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None
    speakers: list[str] | None = None  # everyone heard, when the word lies in overlapped speech


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    words: list[Word] | None = None
    speaker: str | None = None


def uri_of(source: str) -> str:
    """The recording's name in RTTM files: the file's stem, or "audio" for bytes and arrays."""
    from pathlib import Path

    return Path(source).stem if source and not source.startswith("<") else "audio"


@dataclass
class Turn:
    """A stretch of one speaker's speech."""

    start: float
    end: float
    speaker: str


@dataclass
class Diarization:
    """Who spoke when in one input."""

    source: str
    duration: float
    turns: list[Turn] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    overlaps: list[tuple[float, float]] = field(default_factory=list)  # two or more speak at once
    warnings: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return uri_of(self.source)

    def to_rttm(self, uri: str | None = None) -> str:
        uri = (uri or self.uri).replace(" ", "_")
        rows = [f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
                for t in self.turns]
        return "\n".join(rows) + ("\n" if rows else "")

    def to_annotation(self, uri: str | None = None):
        """As a ``pyannote.core.Annotation``, to score with pyannote.metrics."""
        from pyannote.core import Annotation, Segment as Span

        ann = Annotation(uri=uri or self.uri)
        for n, t in enumerate(self.turns):
            ann[Span(t.start, t.end), n] = t.speaker
        return ann

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Transcript:
    """The result of transcribing one input."""

    source: str
    language: str | None  # None: no speech found and no language given
    language_probability: float
    duration: float
    segments: list[Segment] = field(default_factory=list)
    task: str = "transcribe"
    model: str = ""
    speakers: Diarization | None = None  # set when transcribed with diarization
    # How the language was chosen (voxa.langid): given, detected, voted (several windows), or,
    # when detection stayed unsure, prior (most inputs of the batch), hint, guess.
    language_source: str | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["text"] = self.text
        if self.speakers is None:
            del d["speakers"]
        return d


@dataclass(frozen=True)
class VoiceInfo:
    """One voice of one synthesis engine, as ``voxa voices`` lists it."""

    engine: str
    name: str
    language: str  # BCP 47 style: en-US, en-GB, de, pt-BR
    sample_rate: int
    license: str
    installed: bool
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    def to_dict(self) -> dict:
        return asdict(self) | {"id": self.id}


@dataclass
class SpeechChunk:
    """A piece of synthesized audio (float32 mono), usually one sentence, as soon as it is ready."""

    audio: np.ndarray
    sample_rate: int
    text: str  # the sentence as written (before normalisation)
    index: int
    id: str  # the synthesis this chunk belongs to (see voxa.output)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class Speech:
    """A whole synthesis. Unpacks as ``audio, sample_rate = voxa.speak(...)``."""

    audio: np.ndarray
    sample_rate: int
    voice: str
    id: str
    payload: int | None = None  # the watermark payload = the synthesis's audit record number

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def __iter__(self) -> Iterator:
        return iter((self.audio, self.sample_rate))


# ---------------------------------------------------------------------- live recognition events
@dataclass
class SpeechStarted:
    """The voice detector heard speech begin (seconds from the start of the stream)."""

    timestamp: float


@dataclass
class StreamResult:
    """Words for the audio from ``start`` to ``start + duration`` (seconds from stream start).

    Interim results (``is_final`` false) cover everything since the last final and are revised
    by the next result. A final is never revised; ``speech_final`` marks the end of an utterance
    (the speaker paused for the endpointing time), ``from_finalize`` a final forced by the client.
    """

    start: float
    duration: float
    words: list[Word]
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()


@dataclass
class UtteranceEnd:
    """No word has been heard for the configured gap since ``last_word_end``."""

    last_word_end: float


@dataclass
class WakeDetection:
    """A wake word heard at ``time`` (seconds from the start of the stream, about the phrase's end)."""

    word: str  # as asked for: "okay_nabu", "oww:hey_rhasspy"
    phrase: str  # "Okay Nabu"
    time: float
    probability: float
    engine: str  # "micro" (microWakeWord) or "oww" (openWakeWord)

    def to_dict(self) -> dict:
        return asdict(self)

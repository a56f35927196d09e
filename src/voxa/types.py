"""Shared result types, used by every stage (ASR, streaming, diarization, server, CLI).

Plain dataclasses: cheap to build, easy to turn into JSON with ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None


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

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["text"] = self.text
        return d

"""Scoring helpers shared by the tests and the benchmarks (needs the ``eval`` extra).

WER is jiwer's, after Whisper's EnglishTextNormalizer on both sides, so "$9.99" and "nine
dollars and ninety nine cents" count as the same words — the usual way Whisper WER is quoted.

TTS round trips also apply ``SAME_SPOKEN``: spellings that Whisper's normaliser leaves apart
although they are said the same way ("9:30" and "9.30", "3 kg" and "3 kilograms"). It is
applied to both sides alike, so it can only forgive a difference of writing, not of speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


SAME_SPOKEN = [
    (re.compile(r"\b(\d{1,2})\.(\d{2})\b"), r"\1 \2"),  # times: 9:30 becomes "9 30", so 9.30 must too
    (re.compile(r"\bkg\b"), "kilograms"), (re.compile(r"\bkm\b"), "kilometers"),
    (re.compile(r"\bmph\b"), "miles per hour"),
]


def normalize(text: str, same_spoken: bool = False) -> str:
    out = _normalizer()(text)
    if same_spoken:
        for pattern, repl in SAME_SPOKEN:
            out = pattern.sub(repl, out)
    return out


def wer(refs: list[str], hyps: list[str], same_spoken: bool = False) -> float:
    """Word error rate over a corpus (errors / reference words) after normalisation."""
    import jiwer

    return jiwer.wer([normalize(r, same_spoken) for r in refs], [normalize(h, same_spoken) for h in hyps])


@dataclass
class RoundTrip:
    voice: str
    wer: float
    audio_seconds: float
    sentences: list[str]
    heard: list[str]

    def errors(self) -> list[tuple[str, str]]:
        """(written, heard) pairs that differ after normalisation."""
        return [(s, h) for s, h in zip(self.sentences, self.heard) if normalize(s, True) != normalize(h, True)]


def round_trip(sentences: list[str], voice, model=None) -> RoundTrip:
    """Speak each sentence with ``voice`` (a voxa Voice), transcribe it back with ``model``
    (a voxa Whisper engine, default whisper-base) in English, and score the WER. Each sentence
    is decoded in a window of its own (no packing), so it is judged alone, as a listener hears
    it, and one engine's score does not depend on which neighbours its clips were packed with."""
    from .asr import load_model

    model = model or load_model("whisper-base")
    clips, seconds = [], 0.0
    for s in sentences:
        speech = voice.speak(s, sample_rate=16000)
        clips.append(speech.audio)
        seconds += speech.duration
    heard = [t.text for t in model.transcribe_many(clips, language="en", pack=False)]
    return RoundTrip(voice.info.id, wer(sentences, heard, same_spoken=True), seconds, list(sentences), heard)

"""What a synthesis engine is, and the registry of engines.

An engine turns one sentence of text into float32 mono audio at its voice's sample rate. It is
constructed once per process (``get_engine``) and loads each voice's model once, on first use.
Engines know nothing of sentences, normalisation, resampling or output: ``voxa.tts`` does those
the same way for every engine, and only it calls ``synthesize``.

Voice settings follow the spirit of ElevenLabs' ``voice_settings``: ``speed`` everywhere, plus
each engine's own knobs (Piper's noise scales, espeak-ng's pitch, hibari's seed). A setting an
engine does not support is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputError, ModelError
from ..types import VoiceInfo


@dataclass(frozen=True)
class Setting:
    """A voice setting an engine accepts: a number within [low, high]."""

    name: str
    low: float
    high: float
    help: str
    integer: bool = False

    def check(self, engine: str, value) -> float | int:
        try:
            v = int(value) if self.integer else float(value)
            if self.integer and float(value) != v:
                raise ValueError
        except (TypeError, ValueError):
            kind = "an integer" if self.integer else "a number"
            raise InputError(f"{engine}: setting {self.name} must be {kind}, not {value!r}") from None
        if not self.low <= v <= self.high:
            raise InputError(f"{engine}: {self.name} must be between {self.low:g} and {self.high:g}, not {v:g}")
        return v


class Engine(ABC):
    """Base class. Subclasses set the class attributes and implement ``voices`` and
    ``synthesize`` (``missing`` and ``load`` have defaults)."""

    name = ""
    license = ""
    settings: dict[str, Setting] = {}

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """Every voice this engine knows, installed or not."""

    def missing(self) -> str | None:
        """Why the engine cannot run here (a package or program is absent), or None."""
        return None

    def load(self, voice: VoiceInfo) -> None:
        """Load what the voice needs now, so the first sentence is not slowed by it."""

    @abstractmethod
    def synthesize(self, text: str, voice: VoiceInfo, settings: dict) -> np.ndarray:
        """One sentence -> float32 mono audio at ``voice.sample_rate``. Called only by voxa.tts."""

    def check_settings(self, settings: dict) -> dict:
        out = {}
        for key, value in settings.items():
            if value is None:
                continue
            if key not in self.settings:
                offered = ", ".join(self.settings) or "none"
                raise InputError(f"engine {self.name} does not support the setting {key!r}; "
                                 f"it supports: {offered}")
            out[key] = self.settings[key].check(self.name, value)
        return out


SPEED_HELP = "speaking rate, 1.0 normal, 2.0 twice as fast"


@lru_cache(maxsize=None)
def get_engine(name: str) -> Engine:
    """The shared instance of an engine, by name."""
    from .espeak import Espeak
    from .hibari import HibariEngine
    from .piper import PiperEngine

    classes = {c.name: c for c in (HibariEngine, PiperEngine, Espeak)}
    if name not in classes:
        close = difflib.get_close_matches(name, classes, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; engines: {', '.join(classes)}"
        raise InputError(f"unknown TTS engine {name!r}{hint}")
    return classes[name]()


ENGINE_NAMES = ("hibari", "piper", "espeak")  # preference order when a language has several


def all_voices(engine: str | None = None) -> list[VoiceInfo]:
    names = [engine] if engine else ENGINE_NAMES
    return [v for n in names for v in get_engine(n).voices()]


def _lang_matches(asked: str, voice_lang: str) -> int:
    """2 exact (en-us ~ en-US), 1 same base language (en ~ en-GB, pt-BR ~ pt), 0 none."""
    a, v = asked.lower().replace("_", "-"), voice_lang.lower()
    if a == v:
        return 2
    return 1 if a.split("-")[0] == v.split("-")[0] else 0


def resolve(voice: str | None = None, engine: str | None = None, language: str | None = None) -> VoiceInfo:
    """The voice meant by a name ('heart', 'piper:joe', 'espeak:de'), an engine and/or a
    language; defaults to hibari's bundled voice. Unknown names get the close matches."""
    if voice and ":" in voice and not voice.endswith(".onnx"):
        engine_part, _, voice = voice.partition(":")
        if engine and engine != engine_part:
            raise InputError(f"voice {engine_part}:{voice} does not belong to engine {engine}")
        engine = engine_part
    if engine:
        get_engine(engine)  # unknown engine: clear error
    if voice and voice.endswith(".onnx"):
        from .piper import PiperEngine

        return PiperEngine.custom(voice)
    pool = all_voices(engine)
    if voice:
        found = [v for v in pool if v.name.lower() == voice.lower()]
        if language and found and not any(_lang_matches(language, v.language) for v in found):
            raise InputError(f"voice {voice!r} speaks {found[0].language}, not {language!r}")
        if language:
            found = [v for v in found if _lang_matches(language, v.language)]
        if not found and not language:  # "espeak:fr" means espeak's voice for French
            ranked = [(score, v) for v in pool if (score := _lang_matches(voice, v.language))]
            best = max((s for s, _ in ranked), default=0)
            found = [v for s, v in ranked if s == best]
        if not found:
            names = sorted({v.name for v in pool} | {v.id for v in pool})
            close = difflib.get_close_matches(voice, names, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `voxa voices`"
            where = f" of engine {engine}" if engine else ""
            raise InputError(f"unknown voice {voice!r}{where}{hint}")
        return _usable(min(found, key=_preference))
    if language:
        ranked = [(score, v) for v in pool if (score := _lang_matches(language, v.language))]
        if not ranked:
            langs = sorted({v.language for v in pool})
            close = difflib.get_close_matches(language, langs, n=5, cutoff=0.5)
            hint = f"; close: {', '.join(close)}" if close else "; see `voxa voices`"
            where = f" for engine {engine}" if engine else ""
            if engine in (None, "espeak") and (why := get_engine("espeak").missing()):
                hint += f" ({why}: it covers 100+ languages)"
            raise InputError(f"no voice for language {language!r}{where}{hint}")
        best = max(s for s, _ in ranked)
        ranked = [v for s, v in ranked if s == best]
        return _usable(min(ranked, key=_preference))
    installed = [v for v in pool if v.installed]
    if not installed:
        reason = get_engine(engine).missing() if engine else None
        raise ModelError(reason or "no TTS voice is installed")
    return min(installed, key=lambda v: (not v.language.lower().startswith("en"), _preference(v)))


def _preference(v: VoiceInfo) -> tuple:
    """Among equally good matches: installed first, then the language's home variety (fr-FR
    over fr-BE, en-US for English), then engine order (hibari, piper, espeak)."""
    base, _, region = v.language.lower().partition("-")
    home = not region or region == base or v.language.lower() == "en-us"
    return (not v.installed, not home, ENGINE_NAMES.index(v.engine) if v.engine in ENGINE_NAMES else 9)


def _usable(info: VoiceInfo) -> VoiceInfo:
    reason = get_engine(info.engine).missing()
    if reason:
        raise ModelError(reason)
    return info

"""Zero-shot voice cloning (XTTS / F5-TTS class): the engine interface and the one way in.

voxa bundles **no** cloning engine. None of the zero-shot cloning models ships its weights on
PyPI, and voxa fetches nothing from model hubs at run time. An engine comes from a plugin: a
package that registers a :class:`CloneEngine` subclass under the entry-point group
``voxa.clone_engines`` and loads weights from a folder the user gives (``model_dir``).

Every clone goes through :func:`load_clone`. It first runs the consent gate
(:func:`voxa.safety.consent.check`), which refuses a missing, revoked, expired or out-of-scope
consent, or a reference voice that is not the consenting speaker's. Only then does it look for
an engine. The result is an ordinary :class:`voxa.tts.Voice`. Its audio leaves through the same
output path as every other voice: watermarked, and audited with the consent id.

    voice = load_clone("ref.wav", consent_id="3f2a...", engine="xtts", model_dir="~/models/xtts")
    audio, rate = voice.speak("Hello.")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..types import VoiceInfo
from .engine import Engine

GROUP = "voxa.clone_engines"


class CloneEngine(ABC):
    """What a cloning plugin implements. ``reference`` is 16 kHz mono float32 speech of the
    voice to clone; ``synthesize`` returns one sentence at ``sample_rate``."""

    name = ""
    license = ""
    sample_rate = 24000

    @abstractmethod
    def load(self, model_dir: Path) -> None:
        """Load the weights the user provides; raise ModelError with a clear reason if absent."""

    @abstractmethod
    def synthesize(self, text: str, reference: np.ndarray, language: str, settings: dict) -> np.ndarray:
        """One sentence in the reference's voice."""


def clone_engines() -> dict[str, type[CloneEngine]]:
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


class _Bound(Engine):
    """A clone engine with its reference voice, seen through voxa's Engine interface so that
    the sentence splitting, normalisation and output path are the usual ones."""

    settings = {}

    def __init__(self, clone: CloneEngine, reference: np.ndarray, language: str):
        self.name, self.license = clone.name, clone.license
        self._clone, self._reference, self._language = clone, reference, language

    def voices(self) -> list[VoiceInfo]:
        return []

    def check_settings(self, settings: dict) -> dict:
        return {k: v for k, v in settings.items() if v is not None}

    def synthesize(self, text: str, voice: VoiceInfo, settings: dict) -> np.ndarray:
        return np.asarray(self._clone.synthesize(text, self._reference, self._language, settings), np.float32)


def load_clone(reference, *, consent_id: str | None, engine: str | None = None, model_dir=None,
               language: str = "en", actor: str | None = None, origin: str = "api",
               max_reference_s: float | None = None):
    """A :class:`voxa.tts.Voice` speaking in the voice of ``reference`` (a path, bytes or 16 kHz
    array), allowed only under consent ``consent_id``. Refusals raise ConsentError (and are
    audited); with no engine installed, ModelError says so. The consent is checked before the
    reference is decoded, and a reference longer than ``max_reference_s`` (default
    ``consent.MAX_REFERENCE_S``, 60 s) fails while decoding."""
    from ..safety import consent
    from . import Voice

    limit = consent.MAX_REFERENCE_S if max_reference_s is None else max_reference_s
    match = consent.check(consent_id, reference, use="clone", actor=actor, origin=origin, max_reference_s=limit)
    pcm = match.reference
    engines = clone_engines()
    if not engines:
        raise ModelError("no voice-cloning engine is installed. voxa bundles none, because no zero-shot "
                         "cloning model ships its weights on PyPI; install a plugin that registers one under "
                         f"the entry point group {GROUP!r} and give its weights with model_dir (--clone-model)")
    if engine is None and len(engines) > 1:
        raise ModelError(f"several cloning engines are installed ({', '.join(engines)}); choose one")
    name = engine or next(iter(engines))
    if name not in engines:
        raise ModelError(f"no cloning engine {name!r}; installed: {', '.join(engines)}")
    clone = engines[name]()
    if model_dir is None:
        raise ModelError(f"cloning engine {name} needs its weights: give model_dir (--clone-model DIR)")
    clone.load(Path(model_dir).expanduser())
    info = VoiceInfo(name, f"clone-of-{match.consent.speaker}", language, clone.sample_rate, clone.license, True,
                     f"zero-shot clone under consent {match.consent.id}")
    return Voice.bound(_Bound(clone, pcm, language), info, consent_id=match.consent.id)

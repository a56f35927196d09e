"""espeak-ng: formant synthesis for the 100+ languages no neural engine here covers.

Runs the Debian/Homebrew ``espeak-ng`` program as a separate process (it is GPL-3.0; voxa does
not link it), text on stdin so no text is ever read as an option, WAV on stdout. Robotic, but
intelligible and nearly instant. Install it with ``apt install espeak-ng``.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import numpy as np

from ..audio import from_pcm16
from ..errors import InputError, ModelError
from ..types import VoiceInfo
from .engine import SPEED_HELP, Engine, Setting

SAMPLE_RATE = 22050
BASE_WPM = 175  # espeak-ng's default rate, our speed 1.0


class Espeak(Engine):
    name = "espeak"
    license = "GPL-3.0 (separate program)"
    settings = {
        "speed": Setting("speed", 0.5, 2.5, SPEED_HELP),
        "pitch": Setting("pitch", 0, 99, "base pitch, 50 normal", integer=True),
        "volume": Setting("volume", 0, 200, "amplitude, 100 normal", integer=True),
    }

    def missing(self) -> str | None:
        if not shutil.which("espeak-ng"):
            return "the espeak engine needs the espeak-ng program: apt install espeak-ng"
        return None

    def voices(self) -> list[VoiceInfo]:
        return list(_voices()) if not self.missing() else []

    def synthesize(self, text: str, voice: VoiceInfo, settings: dict) -> np.ndarray:
        cmd = ["espeak-ng", "-v", voice.name, "-b", "1", "--stdout",
               "-s", str(round(BASE_WPM * settings.get("speed", 1.0)))]
        if "pitch" in settings:
            cmd += ["-p", str(settings["pitch"])]
        if "volume" in settings:
            cmd += ["-a", str(settings["volume"])]
        try:
            run = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelError(f"espeak-ng failed: {e}") from None
        if run.returncode != 0:
            msg = run.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InputError(f"espeak-ng voice {voice.name}: {msg[-1] if msg else 'failed'}")
        return wav_samples(run.stdout)


def wav_samples(wav: bytes) -> np.ndarray:
    """espeak-ng streams WAV with placeholder sizes; the samples follow the 'data' chunk."""
    at = wav.find(b"data", 12)
    if at < 0:
        return np.zeros(0, np.float32)
    pcm = wav[at + 8:]
    pcm = pcm[: len(pcm) // 2 * 2]
    return from_pcm16(pcm)


@lru_cache(maxsize=1)
def _voices() -> tuple[VoiceInfo, ...]:
    try:
        listing = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    out = []
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4:
            continue
        lang, name = cols[1], cols[3].replace("_", " ")
        others = [c.strip("(") for c in cols[5:] if c.startswith("(")]
        if len(lang.split("-")[0]) == 3 and others:  # cmn -> zh-cmn, so that "zh" finds it
            lang = others[0]
        region = lang.split("-", 1)
        code = region[0] + ("-" + region[1].upper() if len(region) > 1 and len(region[1]) == 2 else
                            ("-" + region[1] if len(region) > 1 else ""))
        out.append(VoiceInfo("espeak", cols[1], code, SAMPLE_RATE, Espeak.license, True, name))
    return tuple(out)

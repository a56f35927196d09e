"""Which watermark voxa puts on its audio: the bundled one, or AudioSeal with your weights.

``VOXA_WATERMARK`` picks the engine: ``voxa`` (default; :mod:`voxa.safety.watermark`, 32-bit
payload, numpy only) or ``audioseal`` (Meta's learned watermark, 16-bit payload). AudioSeal's
weights come from a model hub, so voxa never fetches them: put ``generator.pth`` and
``detector.pth`` in the folder ``VOXA_AUDIOSEAL_DIR`` names and ``pip install audioseal``
(it needs torch). Without them, choosing it is a clear error, and nothing is synthesized.
AudioSeal carries only the low 16 bits of the audit record number, so a detected payload may
match more than one record in a log of more than 65,536 syntheses.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from . import watermark


def engine_name() -> str:
    name = os.environ.get("VOXA_WATERMARK", "voxa").strip().lower() or "voxa"
    if name not in ("voxa", "audioseal"):
        raise ModelError(f"VOXA_WATERMARK={name!r}: choose voxa or audioseal")
    return name


def prepare() -> str:
    """Make sure the chosen watermark can run (AudioSeal: its weights load) and return its name
    as written to the audit log. Raises ModelError otherwise."""
    if engine_name() == "voxa":
        return watermark.NAME
    _audioseal()
    return "audioseal-16bit"


def embedder(sample_rate: int, payload: int):
    """An object with ``push(chunk) -> audio`` and ``flush() -> audio`` for one synthesis."""
    if engine_name() == "voxa":
        return watermark.Embedder(sample_rate, payload)
    return _AudioSealEmbedder(sample_rate, payload)


@dataclass
class Found:
    present: bool
    confidence: float
    payload: int | None
    bits: int  # how many payload bits the engine carries
    name: str = ""  # the watermark read (for voxa's, the version of its scheme)


def detect(pcm16k) -> Found:
    """Look for the configured mark in 16 kHz audio: an array, or an iterable of blocks (voxa's
    detector reads them as they come; AudioSeal needs them joined)."""
    if engine_name() == "voxa":
        r = watermark.detect(pcm16k, 16000)
        return Found(bool(r.present), float(r.confidence), r.payload, 32, r.scheme)
    import torch

    if not isinstance(pcm16k, np.ndarray):
        pcm16k = np.concatenate(list(pcm16k))

    det = _audioseal()[1]
    with torch.inference_mode():
        prob, message = det.detect_watermark(torch.from_numpy(pcm16k[None, None].astype(np.float32)), 16000)
    bits = [int(b) for b in np.asarray(message).reshape(-1)]
    present = float(prob) >= 0.5
    return Found(present, float(prob), int("".join(map(str, bits)), 2) if present else None, 16, "audioseal-16bit")


_MODELS: tuple | None = None
_LOCK = threading.Lock()


def _audioseal():
    """(generator, detector), loaded once from VOXA_AUDIOSEAL_DIR."""
    global _MODELS
    with _LOCK:
        if _MODELS is None:
            folder = os.environ.get("VOXA_AUDIOSEAL_DIR")
            files = [Path(folder or ".").expanduser() / n for n in ("generator.pth", "detector.pth")]
            if not folder or not all(f.is_file() for f in files):
                raise ModelError("VOXA_WATERMARK=audioseal needs AudioSeal's weights on this machine: set "
                                 "VOXA_AUDIOSEAL_DIR to a folder holding generator.pth and detector.pth "
                                 "(voxa downloads nothing)")
            try:
                from audioseal import AudioSeal
            except ImportError:
                raise ModelError("VOXA_WATERMARK=audioseal needs the audioseal package (pip install audioseal)") from None
            _MODELS = (AudioSeal.load_generator(str(files[0]), nbits=16), AudioSeal.load_detector(str(files[1]), nbits=16))
        return _MODELS


class _AudioSealEmbedder:
    """AudioSeal works at 16 kHz: each chunk's watermark is made there and resampled to the
    output rate before it is added, so the chunk keeps its length."""

    def __init__(self, sample_rate: int, payload: int):
        import torch

        self.rate, self._torch = int(sample_rate), torch
        self._gen = _audioseal()[0]
        self._msg = torch.tensor([[(payload >> (15 - i)) & 1 for i in range(16)]])

    def push(self, chunk: np.ndarray) -> np.ndarray:
        from ..audio import resample

        torch = self._torch
        x16 = resample(chunk, self.rate, 16000)
        with torch.inference_mode():
            wm = self._gen.get_watermark(torch.from_numpy(x16[None, None]), 16000, message=self._msg)
        wm = resample(wm.numpy().reshape(-1).astype(np.float32), 16000, self.rate)
        wm = np.pad(wm, (0, max(0, chunk.size - wm.size)))[: chunk.size]
        return np.clip(chunk + wm, -1.0, 1.0).astype(np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros(0, np.float32)

"""A fine-tuning corpus: recordings and what is said in them, checked, split and augmented.

DATA is one of
* a folder: every audio file in it (any depth) with a ``.txt`` of the same name beside it
  (``a/b/utt1.flac`` + ``a/b/utt1.txt``);
* a manifest, ``.csv`` (columns ``audio,text``) or ``.jsonl`` (``{"audio": ..., "text": ...}``
  per line); audio paths are relative to the manifest's folder.

Audio goes through :func:`voxa.audio.decode` (the one way voxa decodes audio). Bad data is an
:class:`~voxa.errors.InputError` naming the first few offenders: a recording with no transcript,
an empty transcript, an empty or undecodable recording, one over 30 s (Whisper's window), a
manifest row with a missing file or column.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import InputError, TooLong

AUDIO_EXT = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm"}
MAX_S = 30.0


@dataclass
class Example:
    path: Path
    text: str
    seconds: float = 0.0  # its length, once checked

    def samples(self) -> np.ndarray:
        """16 kHz float32, decoded again each time: a corpus is not held in memory."""
        return audio.decode(self.path, max_seconds=MAX_S + 1)


def _bad(what: str, items: list[str]) -> InputError:
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return InputError(f"{what}: {', '.join(items[:3])}{more}")


def _pairs(data: Path) -> list[Example]:
    if data.is_dir():
        files = sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_EXT and p.is_file())
        if not files:
            raise InputError(f"{data}: no audio files ({', '.join(sorted(AUDIO_EXT))}) in the folder")
        missing = [str(p.relative_to(data)) for p in files if not p.with_suffix(".txt").is_file()]
        if missing:
            raise _bad(f"{data}: recordings without a transcript (a .txt beside each)", missing)
        return [Example(p, p.with_suffix(".txt").read_text(encoding="utf-8", errors="replace")) for p in files]
    if not data.is_file():
        raise InputError(f"{data}: no such file or folder")
    if data.suffix.lower() == ".csv":
        with open(data, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"audio", "text"} <= set(rows[0]):
            raise InputError(f"{data}: the manifest needs the columns audio and text (it has {', '.join(rows[0])})")
    elif data.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(data.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise InputError(f"{data}:{n}: not a JSON object") from None
            if not isinstance(row, dict) or not isinstance(row.get("audio"), str) or not isinstance(row.get("text"), str):
                raise InputError(f'{data}:{n}: each line is {{"audio": PATH, "text": TEXT}}')
            rows.append(row)
    else:
        raise InputError(f"{data}: DATA is a folder, or a manifest ending in .csv or .jsonl")
    if not rows:
        raise InputError(f"{data}: the manifest lists no recordings")
    examples = [Example((data.parent / r["audio"]).resolve(), r["text"] or "") for r in rows]
    missing = [str(e.path) for e in examples if not e.path.is_file()]
    if missing:
        raise _bad(f"{data}: the manifest names files that do not exist", missing)
    return examples


def load(data: str | Path) -> list[Example]:
    """Every example of ``data``, checked (each recording decoded once, and not kept)."""
    examples = _pairs(Path(data).expanduser())
    empty = [str(e.path.name) for e in examples if not e.text.strip()]
    if empty:
        raise _bad("empty transcripts", empty)
    bad, long, silent = [], [], []
    for e in examples:
        e.text = " ".join(e.text.split())
        try:
            x = e.samples()
        except TooLong:
            long.append(e.path.name)
            continue
        except Exception as err:  # noqa: BLE001 - reported as bad data below
            bad.append(f"{e.path.name} ({err})")
            continue
        e.seconds = x.size / audio.SAMPLE_RATE
        if x.size < audio.SAMPLE_RATE // 10:
            silent.append(e.path.name)
        elif e.seconds > MAX_S:
            long.append(f"{e.path.name} ({e.seconds:.0f} s)")
    if bad:
        raise _bad("recordings that cannot be decoded", bad)
    if silent:
        raise _bad("empty recordings (under 0.1 s of audio)", silent)
    if long:
        raise _bad(f"recordings over {MAX_S:.0f} s (Whisper's window; cut them into utterances)", long)
    return examples


def split(examples: list[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded shuffle, ``fraction`` held out (at least one example each)."""
    if len(examples) < 2:
        raise InputError(f"{len(examples)} recording: fine-tuning needs at least 2 (one is held out to measure WER)")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    val = {i for i in order[:n_val]}
    return [e for i, e in enumerate(examples) if i not in val], [e for i, e in enumerate(examples) if i in val]


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training copy of ``x``: speed 0.9-1.1 (pitch moves with it, as in Kaldi's speed
    perturbation), gain -6..+6 dB and white noise at 15-35 dB SNR."""
    speed = rng.uniform(0.9, 1.1)
    y = audio.resample(x, int(round(audio.SAMPLE_RATE * speed)), audio.SAMPLE_RATE)
    y = y * 10 ** (rng.uniform(-6, 6) / 20)
    power = float(np.mean(y ** 2)) or 1e-8
    y = y + rng.normal(0.0, np.sqrt(power / 10 ** (rng.uniform(15, 35) / 10)), y.size).astype(np.float32)
    return np.clip(y, -1.0, 1.0).astype(np.float32)[: int(MAX_S * audio.SAMPLE_RATE)]

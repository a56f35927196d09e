"""The one door synthetic audio leaves voxa through.

Every sample an engine synthesizes — for the Python API, the CLI, the server or the agent —
passes through a :class:`Release` before anyone else sees it: ``voxa.tts`` opens one per
synthesis and hands it each chunk. Nothing else in voxa calls an engine's ``synthesize``.

Opening a Release writes the synthesis to the audit log (:mod:`voxa.safety.audit`: who, engine,
voice, text hash, consent id); the record's number is the watermark payload. Every chunk is
then watermarked (:mod:`voxa.safety.watermark`) on its way out. Neither step is optional or a
hook that could be left out: a Release that cannot audit raises, and no audio leaves.
Extra processing can still register as a hook (``add_hook``): hooks see each chunk before
the watermark goes on, then the end of every synthesis.

    >>> class Count:
    ...     def on_chunk(self, audio, release): return audio
    ...     def on_close(self, release): print(release.id, release.samples)
    >>> voxa.output.add_hook(Count())
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .errors import InputError


class Hook(Protocol):
    def on_chunk(self, audio: np.ndarray, release: "Release") -> np.ndarray:
        """Return the chunk to release (possibly changed, never longer or shorter)."""

    def on_close(self, release: "Release") -> None:
        """Called once when the synthesis ends, completed or not."""


_hooks: list[Hook] = []
_lock = threading.Lock()


def add_hook(hook: Hook) -> None:
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)


def remove_hook(hook: Hook) -> None:
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


@dataclass
class Release:
    """One synthesis on its way out: call it on each chunk, then ``close()``."""

    engine: str
    voice: str
    text: str | None  # None: the text arrives with the audio (a voice agent's answer; see ``said``)
    sample_rate: int
    settings: dict = field(default_factory=dict)
    origin: str = "api"  # api, cli, server, agent: who asked
    actor: str | None = None  # an API key's id, or None for the local user
    consent_id: str | None = None  # the consent a cloned voice speaks under
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    samples: int = 0
    chunks: int = 0
    closed: bool = False
    said: list[str] = field(default_factory=list)  # text spoken so far, when ``text`` was not known up front
    payload: int = field(init=False)  # the watermark payload: the audit record's number
    watermark: str = field(init=False)  # which watermark the audio carries (voxa-stdm-2, audioseal-16bit)

    def __post_init__(self):
        from .safety import audit, marks, watermark

        if not watermark.rate_ok(self.sample_rate):
            raise InputError(f"sample rate {self.sample_rate} Hz: synthetic audio is watermarked in 20 ms "
                             "frames, so the rate must be a multiple of 50 Hz (16000, 22050, 24000, 48000...)")
        self.watermark = marks.prepare()  # an unusable watermark fails here, before anything is logged
        record = audit.append("synthesis", actor=self.actor, origin=self.origin, engine=self.engine,
                              voice=self.voice, text=self.text, marked=True, consent_id=self.consent_id,
                              detail={"id": self.id, "sample_rate": self.sample_rate, "settings": self.settings,
                                      "watermark": self.watermark})
        self.payload = record.payload
        self._marker = marks.embedder(self.sample_rate, self.payload)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if self.closed:
            raise RuntimeError(f"synthesis {self.id} is closed")
        out = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
        out = np.clip(out, -1.0, 1.0)
        with _lock:
            hooks = list(_hooks)
        for hook in hooks:
            changed = hook.on_chunk(out, self)
            if changed is not None:
                if len(changed) != len(out):
                    raise RuntimeError(f"output hook {hook!r} changed the chunk length")
                out = np.asarray(changed, dtype=np.float32)
        out = self._marker.push(out)  # may keep the last few ms back until the next chunk
        self.samples += len(out)
        self.chunks += 1
        return out

    def finish(self) -> np.ndarray:
        """The audio the watermark still holds (call once, after the last chunk)."""
        if self.closed:
            raise RuntimeError(f"synthesis {self.id} is closed")
        out = self._marker.flush()
        self.samples += len(out)
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.text is None:  # a streamed synthesis: its text is logged once it is known
            from .safety import audit

            audit.append("synthesis-text", actor=self.actor, origin=self.origin, engine=self.engine,
                         voice=self.voice, text=" ".join(self.said), consent_id=self.consent_id,
                         detail={"id": self.id, "payload": self.payload, "samples": self.samples})
        with _lock:
            hooks = list(_hooks)
        for hook in hooks:
            hook.on_close(self)

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

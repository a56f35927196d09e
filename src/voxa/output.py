"""The one door synthetic audio leaves voxa through.

Every sample an engine synthesizes — for the Python API, the CLI, the server or the agent —
passes through a :class:`Release` before anyone else sees it: ``voxa.tts`` opens one per
synthesis and hands it each chunk. Nothing else in voxa calls an engine's ``synthesize``.
That gives watermarking, auditing and disclosure a single place to act on *all* synthetic
audio: they register as hooks here (``add_hook``) and see every chunk, then the end of
every synthesis.

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
    text: str
    sample_rate: int
    settings: dict = field(default_factory=dict)
    origin: str = "api"  # api, cli, server, agent: who asked
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    samples: int = 0
    chunks: int = 0
    closed: bool = False

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
        self.samples += len(out)
        self.chunks += 1
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with _lock:
            hooks = list(_hooks)
        for hook in hooks:
            hook.on_close(self)

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

"""What one worker does with one group of files: the same for the local pool and for Ray.

A worker loads its model once (``load``) and transcribes a whole group in one call, so voxa's
packing fills Whisper's 30 s windows with speech from several files. It returns, per file,
the transcript or the reason it failed; writing files and recording states is the driver's job.
"""

from __future__ import annotations

from dataclasses import dataclass

_ENGINE = None


@dataclass
class Outcome:
    path: str
    transcript: object | None  # voxa.types.Transcript
    error: str | None
    kind: str | None = None  # the error's class: AudioError is the file's fault


def load(model: str | None, threads: int) -> None:
    global _ENGINE
    from ..asr import load_model

    _ENGINE = load_model(model, cpu_threads=threads)


def run_group(paths: list[str], options: dict, speakers: dict | None) -> list[Outcome]:
    from ..asr import Failure

    if speakers is not None:
        from ..diarization import transcribe_many

        results = list(transcribe_many(paths, _ENGINE, **speakers, **options))
    else:
        results = list(_ENGINE.transcribe_many(paths, **options))
    out = []
    for path, r in zip(paths, results):
        if isinstance(r, Failure):
            out.append(Outcome(path, None, str(r.error), type(r.error).__name__))
        else:
            out.append(Outcome(path, r, None))
    return out

"""Batch transcription of a corpus: durable, resumable, on local worker processes or on Ray.

    voxa batch corpus/ --out transcripts/ -m whisper-base -f txt,json --workers 2
    voxa batch manifest.jsonl --out transcripts/ --ray auto        # or --ray ray://head:10001
    voxa batch status transcripts/

The driver (this process) owns the job store (:mod:`.store`) and writes every output file; the
workers (:mod:`.pool`, :mod:`.work`) only transcribe. Inputs are grouped once, when the batch is
created, and each group is decoded in one call so that packing fills Whisper's windows with
several files. Run the same command again after a crash or ``kill -9`` and it goes on where it
stopped: finished files are not redone, and a file is never written twice under two names.
A failed file is recorded with its reason and tried again on later runs, up to ``max_attempts``
in all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import formats
from ..audio import probe_duration
from ..errors import InputError
from .inputs import expand
from .pool import LocalPool, RayPool, WorkerLost
from .store import JobStore

__all__ = ["run", "status", "Progress"]
DEFAULT_MAX_WORKERS = 4  # each holds a model (whisper-base: up to ~1 GB while decoding)


@dataclass
class Progress:
    """Reported after every group: files and audio seconds done so far in this run."""

    done: int
    failed: int
    total: int
    audio_s: float
    audio_total_s: float
    elapsed_s: float

    @property
    def speed(self) -> float:
        """Audio hours per wall hour, this run."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _clean_partial(out: Path) -> int:
    """Remove output files a killed run left half-written (formats.write's temporary names)."""
    n = 0
    for tmp in out.rglob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def run(source: str, out, *, model: str | None = None, formats_: list[str] | None = None, language=None,
        task: str = "transcribe", word_timestamps: bool = False, diarize: bool = False, speakers: dict | None = None,
        workers: int | None = None, threads: int = 0, group_size: int = 8, max_attempts: int = 3, ray: str | None = None,
        db: str | None = None, on_progress: Callable[[Progress], None] | None = None,
        max_duration: float | None = None) -> dict:
    """Transcribe every input of ``source`` into ``out``; returns the store's summary.
    ``max_duration``: an input longer than this many seconds fails while it is decoded (a
    limit, not a setting of the batch: a resumed batch may change it)."""
    out = formats.check_dir(out)
    names = formats_ or ["txt"]
    # One single-threaded model per core: CTranslate2 gains little from a second thread (whisper-base
    # here: 20.9x real time on 1 thread, 21.8x on 2) but two processes give 38.6x (benchmarks/batch.py).
    workers = workers or min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS)
    if workers < 1 or group_size < 1 or max_attempts < 1:
        raise InputError("workers, group size and attempts must be at least 1")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    options = {"language": language, "task": task, "word_timestamps": word_timestamps or diarize}
    from ..asr import load_model

    load_model(model).check_options(task=task, language=language)  # a bad model or language fails here, once
    speakers = (speakers or {}) if diarize else None
    settings = {"model": model, "formats": sorted(names), "options": options, "speakers": speakers,
                "group_size": group_size}
    store = JobStore.for_dir(out, db)
    store.claim(settings)
    inputs = expand(source)
    known = store.paths()  # a resumed batch does not read every header again
    store.add([(p, stem, probe_duration(p)) for p, stem in inputs if str(p) not in known], group_size)
    store.recover()
    store.retry_failed(max_attempts)
    _clean_partial(out)

    groups = store.pending_groups()
    total = sum(len(g) for g in groups)
    audio_total = sum(j.audio_s or 0 for g in groups for j in g)
    progress = Progress(0, 0, total, 0.0, audio_total, 0.0)
    t0 = time.perf_counter()
    pool = RayPool(workers, model, threads, ray) if ray else LocalPool(workers, model, threads)
    try:
        inflight: dict = {}
        todo = list(groups)
        while todo or inflight:
            while todo and len(inflight) < 2 * workers:
                group = todo.pop(0)
                store.start(group)
                inflight[pool.submit([j.path for j in group], options | {"max_duration": max_duration},
                                     speakers)] = group
            for handle in pool.wait(list(inflight)):
                group = inflight.pop(handle)
                try:
                    outcomes = pool.result(handle)
                except WorkerLost as e:  # not the files' fault: try the group again while attempts last
                    again = [j for j in group if store.failed(j, str(e)) < max_attempts]
                    todo += [again] if again else []
                    progress.failed += len(group) - len(again)
                    continue
                for job, o in zip(group, outcomes):
                    if o.transcript is None:
                        store.failed(job, o.error)
                        progress.failed += 1
                        continue
                    t = o.transcript
                    where = Path(job.stem)
                    formats.write(t, out / where.parent, names + (["rttm"] if diarize and "rttm" not in names else []),
                                  where.name)
                    store.done(job, t.duration)
                    progress.done += 1
                    progress.audio_s += t.duration
                progress.elapsed_s = time.perf_counter() - t0
                if on_progress:
                    on_progress(progress)
    finally:
        pool.close()
    return store.summary()


def status(out, db: str | None = None) -> dict:
    out = Path(out)
    if db is None and not (out / ".voxa-batch.db").exists():
        raise InputError(f"{out}: no batch here (no .voxa-batch.db)")
    return JobStore.for_dir(out, db).summary()

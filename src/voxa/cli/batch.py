"""``voxa batch INPUT --out DIR`` and ``voxa batch status DIR`` (a shell over voxa.batch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import app, err, fail, limit, max_duration_option, out, progress_bar
from .diarize import SPEAKERS_HELP


@app.command()
def batch(
    args: List[str] = typer.Argument(..., metavar="INPUT | status DIR",
                                     help="A folder, a glob, or a manifest (.txt/.csv/.jsonl) of local files; "
                                          "or `status DIR` to summarise a batch."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Output folder (also holds the job store)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model name (see `voxa models`)."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Language code; detected if omitted."),
    task: str = typer.Option("transcribe", "--task", help="transcribe, or translate (to English)."),
    word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Add times per word (json, tsv)."),
    diarize: bool = typer.Option(False, "--diarize", help="Label speakers (needs the diarize extra); adds rttm."),
    num_speakers: Optional[int] = SPEAKERS_HELP["num_speakers"],
    min_speakers: Optional[int] = SPEAKERS_HELP["min_speakers"],
    max_speakers: Optional[int] = SPEAKERS_HELP["max_speakers"],
    fmt: str = typer.Option("txt", "-f", "--format", help="txt, srt, vtt, json, tsv, or all (comma-separated)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes (or Ray actors), one "
                                          "model and one core each (default: the cores, at most 4)."),
    group_size: int = typer.Option(8, "--group-size", min=1, help="Files decoded together by one worker (fixed "
                                   "when the batch is created)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on Ray: auto (a local instance on 127.0.0.1) or a "
                                      "cluster address (needs the ray extra)."),
    db: Optional[str] = typer.Option(None, "--db", help="Job store as an SQLAlchemy URL (default: SQLite in --out)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Times a failed file is tried again, across runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    max_duration: float = max_duration_option(),
):
    """Transcribe a corpus into --out, resumably: run the same command again after a crash and it
    goes on where it stopped. Failed files are listed by `voxa batch status DIR`."""
    from .. import batch as b
    from .. import formats

    if args[0] == "status":
        if len(args) != 2:
            fail("usage: voxa batch status DIR")
        _report(b.status(args[1], db), as_json)
        return
    if len(args) != 1:
        fail("give one INPUT (a folder, glob or manifest); quote a glob so the shell does not expand it")
    if out_dir is None:
        fail("--out DIR is required")
    names = formats.parse(fmt)
    speakers = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    if not diarize and any(speakers.values()):
        fail("speaker options need --diarize")
    if diarize:
        from ..diarization import check

        check(num_speakers, min_speakers, max_speakers)
    with progress_bar(not quiet and err.is_terminal, "speed") as progress:
        bar = progress.add_task("transcribing", total=None, speed="")

        def show(p):
            progress.update(bar, total=p.audio_total_s or p.total, completed=p.audio_s if p.audio_total_s else p.done,
                            speed=f"{p.done}/{p.total} files, {p.failed} failed, "
                                  f"{p.speed:.1f} audio h per wall h")

        summary = b.run(args[0], out_dir, model=model, formats_=names, language=language, task=task,
                        word_timestamps=word_timestamps, diarize=diarize, speakers=speakers, workers=workers, group_size=group_size,
                        max_attempts=retries + 1, ray=("auto-local" if ray == "auto" else ray), db=db, on_progress=show,
                        max_duration=limit(max_duration))
    _report(summary, as_json)
    if summary["failed"]:
        raise typer.Exit(1)


def _report(s: dict, as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(s), markup=False)
        return
    out.print(f"{s['done']} of {s['inputs']} done, {s['failed']} failed, {s['pending'] + s['running']} to do; "
              f"{s['audio_hours_done']:.2f} of {s['audio_hours_total']:.2f} audio hours", markup=False)
    for f in s["failures"]:
        reason = f["error"] if f["path"] in (f["error"] or "") else f"{f['path']}: {f['error']}"
        out.print(f"failed ({f['attempts']}x): {reason}", markup=False)

"""``voxa wake``: find wake words ("Okay Nabu", "Hey Jarvis", ...) in recordings, with times."""

from __future__ import annotations

import json

import typer

from . import app, fail, limit, max_duration_option, out


@app.command()
def wake(
    files: list[str] = typer.Argument(None, help="Audio or video files; - reads standard input."),
    word: list[str] = typer.Option(None, "--word", "-w",
                                   help="Wake word to listen for (repeatable; default okay_nabu); "
                                        "oww:NAME picks the openWakeWord model. --list shows them."),
    threshold: float = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                    help="Detection cut-off (default: each model's own, 0.5 for openWakeWord)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file."),
    show: bool = typer.Option(False, "--list", help="List the bundled wake words and exit."),
    max_duration: float = max_duration_option(),
):
    """List the wake words heard in each recording: time (seconds, about the end of the phrase),
    word, probability. Exit 0 when something was heard, 1 when nothing was."""
    import sys

    from .. import wake as ww

    if show:
        for row in ww.words():
            out.print(f"{row['name']:<18} {row['phrase']:<12} {row['engine']:<6} "
                      f"{'installed' if row['installed'] else 'missing'}  {row['licence']}", markup=False)
        return
    if not files:
        fail("name at least one file (or --list)")
    words = word or [ww.DEFAULT_WORD]
    for w in words:
        ww.parse(w)  # a bad name fails before any decoding
    heard = 0
    for f in files:
        hits = ww.detect(sys.stdin.buffer if f == "-" else f, words, threshold=threshold,
                         max_seconds=limit(max_duration))
        heard += len(hits)
        if as_json:
            out.print(json.dumps({"file": f, "detections": [h.to_dict() for h in hits]}), markup=False)
            continue
        if not hits:
            out.print(f"{f}: no wake word", markup=False)
        for h in hits:
            out.print(f"{f}\t{h.time:8.2f}\t{h.word}\t{h.probability:.2f}", markup=False)
    if not heard:
        raise typer.Exit(1)

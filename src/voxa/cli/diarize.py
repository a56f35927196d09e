"""``voxa diarize``: who spoke when (a thin shell over voxa.diarize)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import AudioError, VoxaError
from . import app, err, fail, limit, max_duration_option, out

SPEAKERS_HELP = dict(
    num_speakers=typer.Option(None, "--num-speakers", min=1, help="Exactly this many speakers."),
    min_speakers=typer.Option(None, "--min-speakers", min=1, help="At least this many speakers."),
    max_speakers=typer.Option(None, "--max-speakers", min=1, help="At most this many speakers."),
    channels=typer.Option("mix", "--channels", help="mix: find speakers by voice; split: one speaker per channel."),
)


@app.command()
def diarize(
    file: str = typer.Argument(..., help="Audio or video file; - reads standard input."),
    num_speakers: Optional[int] = SPEAKERS_HELP["num_speakers"],
    min_speakers: Optional[int] = SPEAKERS_HELP["min_speakers"],
    max_speakers: Optional[int] = SPEAKERS_HELP["max_speakers"],
    channels: str = SPEAKERS_HELP["channels"],
    fmt: str = typer.Option("rttm", "-f", "--format", help="rttm or json."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the timeline to this PNG file."),
    max_duration: float = max_duration_option(),
):
    """Who spoke when: speaker turns as RTTM (or JSON), and a timeline picture with --plot."""
    from .. import diarization as d

    if fmt not in ("rttm", "json"):
        fail(f"unknown format {fmt!r} (use rttm or json)")
    if plot is not None and plot.parent and not plot.parent.is_dir():
        fail(f"{plot.parent}: no such folder for the plot")
    try:
        d.check(num_speakers, min_speakers, max_speakers, channels)
        if channels == "mix":
            d.ready()  # without the extra: its one-line error, before any audio is read
        result = d.diarize(file, num_speakers=num_speakers, min_speakers=min_speakers,
                           max_speakers=max_speakers, channels=channels, max_duration=limit(max_duration))
        for w in result.warnings:
            err.print(f"voxa: warning: {w}", markup=False, highlight=False)
        if plot is not None:
            d.plot(result, plot)
            err.print(f"wrote {plot}", markup=False, highlight=False)
    except AudioError as e:  # the input, not the command line
        fail(str(e), 1)
    except VoxaError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{plot}: cannot write ({e.strerror})", 1)
    if fmt == "json":
        out.print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2), markup=False)
    else:
        out.print(result.to_rttm(), end="", markup=False)

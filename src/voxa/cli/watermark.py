"""``voxa watermark detect``: is a recording voxa's synthetic speech, and whose?"""

from __future__ import annotations

import json

import typer

from . import app, limit, out

wm_app = typer.Typer(no_args_is_help=True, help="Find voxa's watermark in audio.")
app.add_typer(wm_app, name="watermark")


@wm_app.command("detect")
def detect(
    file: str = typer.Argument(..., help="Audio or video file; - reads standard input."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    max_duration: float = typer.Option(3600.0, "--max-duration", min=0.0,
                                       help="Longest input in seconds, enforced while decoding (0: no limit)."),
):
    """Look for the watermark; print the payload and the audit record it points to. Exit 0 when
    a mark is found, 1 when none is."""
    import sys

    from ..safety.detect import detect as find

    d = find(sys.stdin.buffer if file == "-" else file, max_seconds=limit(max_duration))
    if as_json:
        out.print(json.dumps(d.to_dict()), markup=False)
    elif d.present:
        rec = d.record
        who = (f"synthesis {rec['seq']} at {rec['time'][:19]}Z by {rec['actor']} ({rec['origin']}), voice {rec['voice']}"
               if rec else d.note)
        out.print(f"watermark found: payload {d.payload} (confidence {d.confidence:.1f}); {who}", markup=False)
    else:
        out.print(f"no watermark found in {d.duration:.1f} s" + (f"; {d.note}" if d.note else ""), markup=False)
    if not d.present:
        raise typer.Exit(1)

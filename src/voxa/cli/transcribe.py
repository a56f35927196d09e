"""``voxa transcribe``: recordings in, transcripts out (a thin shell over voxa.asr)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError, ModelError, OutputError, VoxaError
from . import PROGRESS_MIN_S, app, err, fail, limit, max_duration_option, out, progress_bar
from .diarize import SPEAKERS_HELP


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
    languages: Optional[str] = typer.Option(None, "--languages", help="No --language: detect only among these (comma list, e.g. en,de)."),
    language_hint: Optional[str] = typer.Option(None, "--language-hint", help="No --language: the language to take when detection is unsure."),
    task: str = typer.Option("transcribe", "--task", help="transcribe, or translate (to English)."),
    word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Add start/end/probability per word."),
    vad: bool = typer.Option(True, "--vad/--no-vad", help="Skip non-speech with Silero VAD."),
    beam_size: int = typer.Option(2, "--beam-size", min=1, max=16),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=64, help="Windows decoded together."),
    fmt: str = typer.Option("txt", "-f", "--format", help="txt, srt, vtt, json, tsv, or all (comma-separated list allowed)."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Write files here instead of printing."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    diarize: bool = typer.Option(False, "--diarize", help="Label segments and words with speakers (needs the diarize extra)."),
    num_speakers: Optional[int] = SPEAKERS_HELP["num_speakers"],
    min_speakers: Optional[int] = SPEAKERS_HELP["min_speakers"],
    max_speakers: Optional[int] = SPEAKERS_HELP["max_speakers"],
    channels: str = SPEAKERS_HELP["channels"],
    max_duration: float = max_duration_option(),
):
    """Transcribe (or translate) recordings. Many files are decoded together, which is faster."""
    from .. import audio, formats
    from ..asr import Failure, load_model

    try:
        names = formats.parse(fmt)
        if diarize and "all" in fmt.lower():
            names.append("rttm")
        if output_dir is None and len(names) > 1:
            raise InputError("several formats need --output-dir")
        if output_dir is not None:
            formats.check_dir(output_dir)
        if files.count("-") > 1:
            raise InputError("standard input (-) can be given only once")
        engine = load_model(model)
        opts = dict(language=language, languages=languages, language_hint=language_hint, task=task,
                    word_timestamps=word_timestamps, vad=vad,
                    beam_size=beam_size, batch_size=batch_size, max_duration=limit(max_duration))
        engine.check_options(**opts)
        speakers = dict(num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers)
        if diarize:
            from .. import diarization as dz

            dz.check(channels=channels, **speakers)
            if channels == "mix":
                dz.ready()  # without the extra, fail now rather than once per file
            if "-" in files:
                files = [f if f != "-" else sys.stdin.buffer.read() for f in files]
        elif channels != "mix" or any(v is not None for v in speakers.values()):
            raise InputError("speaker options need --diarize")
    except (InputError, ModelError, OutputError) as e:
        fail(str(e))

    stems = _stems(["-" if isinstance(f, bytes) else f for f in files])
    failed = 0
    total = sum(d for d in (audio.probe_duration(f) for f in files) if d)
    show = not quiet and err.is_terminal and total >= PROGRESS_MIN_S
    progress = progress_bar(show, "audio")
    with progress:
        bar = progress.add_task("transcribing", total=total or None, audio="")
        done_s = 0.0

        def advance(seconds: float) -> None:
            nonlocal done_s
            done_s += seconds
            progress.update(bar, advance=seconds, audio=f"{done_s / 60:.1f} of {total / 60:.1f} min audio")

        if diarize:
            results = _with_speakers(engine, files, opts, channels, speakers, advance)
        else:
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


def _with_speakers(engine, files, opts, channels, speakers, advance):
    """Transcripts with speakers, one file at a time (each is diarized after it is transcribed)."""
    from ..asr import Failure
    from ..diarization import transcribe_many

    for result in transcribe_many(files, engine, channels=channels, **speakers, **opts):
        if not isinstance(result, Failure):
            for w in result.speakers.warnings:
                err.print(f"voxa: warning: {result.source}: {w}", markup=False, highlight=False)
            advance(result.duration)
        yield result

"""``voxa speak`` and ``voxa voices``: text in, audio out (a thin shell over voxa.tts).

Audio is always produced and encoded sentence by sentence, so a whole book speaks in bounded
memory. A file is written to a temporary name and renamed when complete (no half-written
``out.wav`` after an error) unless ``--stream`` asks for the audio to appear as it is made.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import AudioError, InputError, ModelError, OutputError, VoxaError
from . import app, err, fail, out, progress_bar

PROGRESS_MIN_CHARS = 2000  # show a progress bar for texts at least this long


def _read_text(text: Optional[str], file: Optional[Path]) -> str:
    if text is not None and file is not None:
        raise InputError("give the text or --file, not both")
    if file is not None and str(file) != "-":
        try:
            return file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{file}: not UTF-8 text") from None
        except OSError as e:
            raise InputError(f"{file}: cannot read ({e.strerror})") from None
    if text is not None and text != "-":
        return text
    if sys.stdin.isatty():
        raise InputError('nothing to say: give TEXT, --file FILE, or pipe text in (voxa speak "Hello.")')
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")


def _settings(pairs: List[str]) -> dict:
    found = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise InputError(f"--set needs KEY=VALUE, not {pair!r}")
        found[key.strip()] = value.strip()
    return found


def _target(output: str, fmt: Optional[str]) -> tuple[Optional[Path], str]:
    from ..audio import FORMATS

    path = None if output == "-" else Path(output)
    if fmt is None:
        ext = path.suffix.lstrip(".").lower() if path else ""
        fmt = {"ogg": "opus", "raw": "pcm", "m4a": "aac"}.get(ext, ext) or "wav"
        if fmt not in FORMATS:
            raise InputError(f"cannot tell the format from {path.name!r}; add --format ({', '.join(FORMATS)})")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if path is None and sys.stdout.isatty():
        raise OutputError("standard output is a terminal: give -o FILE, or pipe the audio to a player")
    if path is not None:
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"{parent}: no such folder")
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise OutputError(f"{path}: not writable")
    return path, fmt


@app.command()
def speak(
    text: Optional[str] = typer.Argument(None, help="What to say; omit (or -) to read standard input."),
    file: Optional[Path] = typer.Option(None, "--file", help="Read the text from this UTF-8 file."),
    output: str = typer.Option("speech.wav", "-o", "--output", help="Audio file to write; - for standard output."),
    fmt: Optional[str] = typer.Option(None, "-f", "--format", help="wav, flac, mp3, opus, aac or pcm (default: from -o)."),
    voice: Optional[str] = typer.Option(None, "-v", "--voice", help="Voice name or engine:voice (see `voxa voices`)."),
    engine: Optional[str] = typer.Option(None, "-e", "--engine", help="hibari, piper or espeak."),
    language: Optional[str] = typer.Option(None, "-l", "--language", help="Pick a voice for this language (en, de, pt-BR...)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Speaking rate, 1.0 normal."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Resample the output to this rate (Hz)."),
    setting: List[str] = typer.Option([], "-s", "--set", help="Engine voice setting KEY=VALUE (repeatable), e.g. seed=7, noise_scale=0.4, pitch=60."),
    stream: bool = typer.Option(False, "--stream", help="Write audio as each sentence is made (e.g. -o - | player)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or summary."),
    clone_from: Optional[str] = typer.Option(None, "--clone-from", help="Speak in the voice of this recording "
                                             "(needs --consent and a cloning engine; voxa bundles none)."),
    consent: Optional[str] = typer.Option(None, "--consent", help="The consent id the cloned speaker gave (voxa consent add)."),
    clone_engine: Optional[str] = typer.Option(None, "--clone-engine", help="Cloning engine plugin to use."),
    clone_model: Optional[Path] = typer.Option(None, "--clone-model", help="Folder with the cloning engine's weights."),
):
    """Synthesize speech from text, sentence by sentence. Every output is watermarked and audited."""
    from .. import audio, tts
    from ..errors import ConsentError

    try:
        body = _read_text(text, file)
        path, fmt = _target(output, fmt)
        opts = _settings(setting)
        if speed is not None:
            opts["speed"] = speed
        if clone_from is not None:
            from ..tts.clone import load_clone

            v = load_clone(clone_from, consent_id=consent, engine=clone_engine, model_dir=clone_model,
                           language=language or "en", origin="cli")
        elif consent or clone_engine or clone_model:
            raise InputError("--consent, --clone-engine and --clone-model go with --clone-from")
        else:
            v = tts.load_voice(voice, engine=engine, language=language)
        chunks = v.stream(body, sample_rate=sample_rate, origin="cli", **opts)
        rate = sample_rate or v.sample_rate
    except ConsentError as e:
        fail(f"refused: {e}", 1)
    except (InputError, ModelError, OutputError, AudioError) as e:
        fail(str(e))

    t0 = time.perf_counter()
    enc = audio.Encoder(fmt, rate)
    show = not quiet and err.is_terminal and len(body) >= PROGRESS_MIN_CHARS
    if path is None:
        sink, tmp = sys.stdout.buffer, None
    elif stream:
        sink, tmp = open(path, "wb"), None
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent if str(path.parent) else ".")
        sink = os.fdopen(fd, "wb")
    try:
        with progress_bar(show, "audio") as progress:
            bar = progress.add_task("speaking", total=len(body), audio="")
            for chunk in chunks:
                data = enc.write(chunk.audio)
                sink.write(data)
                if stream or path is None:
                    sink.flush()
                progress.update(bar, advance=len(chunk.text) + 1, audio=f"{enc.samples / rate:.0f} s audio")
        sink.write(enc.close())
        if fmt == "wav" and sink.seekable():
            audio.finish_wav(sink, rate, enc.samples)
        sink.flush()
        if path is not None:
            sink.close()
            if tmp:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
                os.replace(tmp, path)
    except VoxaError as e:
        _abandon(sink, tmp, path)
        fail(str(e), 1)
    except BrokenPipeError:
        _abandon(sink, tmp, path)
        raise typer.Exit(1)
    except OSError as e:
        _abandon(sink, tmp, path)
        fail(f"{path or 'stdout'}: cannot write ({e.strerror})", 1)
    if not quiet:
        where = "stdout" if path is None else str(path)
        err.print(f"wrote {where}: {enc.samples / rate:.1f} s of {fmt} at {rate} Hz, voice {v.info.id}, "
                  f"in {time.perf_counter() - t0:.1f} s", markup=False, highlight=False)


def _abandon(sink, tmp: Optional[str], path: Optional[Path]) -> None:
    if path is None:
        return
    try:
        sink.close()
    except OSError:
        pass
    if tmp and os.path.exists(tmp):
        os.unlink(tmp)


@app.command()
def voices(
    engine: Optional[str] = typer.Option(None, "-e", "--engine", help="Only this engine."),
    language: Optional[str] = typer.Option(None, "-l", "--language", help="Only voices for this language."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
):
    """List the voices: engine, voice, language, sample rate, licence, installed."""
    from .. import tts
    from ..tts.engine import get_engine

    try:
        found = tts.voices(engine, language)
    except VoxaError as e:
        fail(str(e))
    if as_json:
        for v in found:
            out.print(json.dumps(v.to_dict()), markup=False)
        return
    table = Table("engine", "voice", "language", "rate", "licence", "installed", "description")
    for v in found:
        table.add_row(v.engine, v.name, v.language, str(v.sample_rate), v.license,
                      "yes" if v.installed else "no", v.description)
    Console(width=max(out.width, 130)).print(table)
    for name in [engine] if engine else ["hibari", "piper", "espeak"]:
        reason = get_engine(name).missing()
        if reason:
            err.print(f"note: {reason}", markup=False, highlight=False)

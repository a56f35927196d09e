"""``voxa listen FILE``: play a recording into live recognition at the pace it was spoken and
print interim and final results as they arrive.

With ``--url`` it streams to a voxa server's WS /v1/listen (or any Deepgram-compatible one) as
16 kHz linear16 and prints what comes back; without it, it runs the same recogniser in this
process. ``--json`` prints the raw messages, one per line (the server's, or the same shape
built locally).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Optional
from urllib.parse import urlencode

import typer

from ..errors import VoxaError
from . import app, err, fail, out

CHUNK_S = 0.1


def _line(msg: dict, tty: bool) -> None:
    kind = msg.get("type")
    if kind == "Results":
        text = msg["channel"]["alternatives"][0]["transcript"]
        span = f"{msg['start']:7.2f}-{msg['start'] + msg['duration']:.2f}"
        if not msg["is_final"]:
            if tty:
                sys.stdout.write(f"\r\x1b[K\x1b[2m{span}  {text}\x1b[0m")
                sys.stdout.flush()
            else:
                out.print(f"interim {span}  {text}", markup=False)
            return
        words = msg["channel"]["alternatives"][0].get("words") or []
        if any("speaker" in w for w in words):  # diarize: the speaker before each run of their words
            parts, last = [], None
            for w in words:
                if w.get("speaker") != last:
                    last = w.get("speaker")
                    parts.append(f"[S{last}]")
                parts.append(w.get("punctuated_word") or w["word"])
            text = " ".join(parts)
        mark = "final*" if msg["speech_final"] else "final "
        if tty:
            sys.stdout.write("\r\x1b[K")
        out.print(f"{mark} {span}  {text}" if not tty else f"{span}  {text}", markup=False)
    elif kind == "WakeWord":
        if tty:
            sys.stdout.write("\r\x1b[K")
        out.print(f"wake   {msg['timestamp']:7.2f}  {msg['phrase']} ({msg['probability']:.2f})", markup=False)
    elif kind == "Error":
        err.print(f"voxa: warning: {msg.get('err_msg')}", markup=False, highlight=False)


def _query(model: Optional[str], opts: dict) -> dict:
    """The stream options as /v1/listen query parameters (16 kHz linear16 is what is sent)."""
    q = {"encoding": "linear16", "sample_rate": 16000, "channels": 1,
         "interim_results": str(opts["interim_results"]).lower(),
         "vad_events": str(opts["vad_events"]).lower()}
    if opts.get("diarize"):
        q["diarize"] = "true"
    if opts.get("wake"):
        q["wake"] = ",".join(opts["wake"])
    if "endpointing_ms" in opts:
        q["endpointing"] = "false" if opts["endpointing_ms"] is None else opts["endpointing_ms"]
    for key, value in (("model", model), ("language", opts["language"]), ("utterance_end_ms", opts["utterance_end_ms"])):
        if value:
            q[key] = value
    return q


def _remote(url: str, path: str, params: dict, api_key: Optional[str], pace: float, show) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    from .. import audio
    from ..streaming import paced

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
    try:
        ws = connect(full, additional_headers=headers, max_size=1 << 22, open_timeout=30)
    except InvalidStatus as e:
        body = e.response.body.decode("utf-8", "replace") if e.response.body else ""
        try:
            body = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        fail(f"{url}: the server refused the stream (HTTP {e.response.status_code}): {body}")
    except OSError as e:
        fail(f"{url}: cannot connect ({e.strerror or e})")
    problem: list[str] = []

    def receive():
        try:
            for raw in ws:
                show(json.loads(raw))
        except ConnectionClosed:
            pass
        if ws.close_code not in (None, 1000):
            problem.append(f"the server closed the stream ({ws.close_code}: {ws.close_reason})")

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    try:
        for block in paced(audio.stream(path, block_seconds=CHUNK_S), pace):
            ws.send(audio.to_pcm16(block))
        ws.send(json.dumps({"type": "CloseStream"}))
    except ConnectionClosed:
        pass
    reader.join()
    ws.close()
    if problem:
        fail(problem[0], 1)


def _local(path: str, model: Optional[str], opts: dict, pace: float, show) -> None:
    from ..streaming import listen, message

    model = model or "tiny.en"
    for event in listen(path, model, pace=pace, chunk_s=CHUNK_S, **opts):
        show(message(event, model=model))


@app.command()
def listen(
    file: str = typer.Argument(..., help="Recording to play as a live stream (any format FFmpeg reads; - for stdin)."),
    url: Optional[str] = typer.Option(None, "--url", help="Stream to this server, e.g. ws://127.0.0.1:8000/v1/listen (default: in this process)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="VOXA_API_KEY", help="Bearer key for --url."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Streaming model (default tiny.en)."),
    language: Optional[str] = typer.Option(None, "-l", "--language"),
    interim: bool = typer.Option(True, "--interim/--no-interim", help="Show interim results."),
    endpointing: Optional[str] = typer.Option(None, "--endpointing", help="Silence (ms) that ends an utterance, or false (default 400)."),
    utterance_end_ms: Optional[int] = typer.Option(None, "--utterance-end-ms", min=500),
    vad_events: bool = typer.Option(False, "--vad-events", help="Also report SpeechStarted."),
    diarize: bool = typer.Option(False, "--diarize", help="Label the words of finals with speakers (the diarize extra)."),
    wake: Optional[list[str]] = typer.Option(None, "--wake", help="Recognise only after this wake word (repeatable; voxa wake --list)."),
    speed: float = typer.Option(1.0, "--speed", min=0.0, help="Playback pace: 1 = real time, 2 = twice as fast, 0 = as fast as possible."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON messages, one per line."),
):
    """Stream a recording at real-time pace and print interim and final results."""
    if endpointing is not None and endpointing != "false" and not endpointing.isdigit():
        fail(f"--endpointing must be milliseconds or false, not {endpointing!r}")
    if file != "-":
        from pathlib import Path

        if not Path(file).exists():
            fail(f"{file}: no such file")
    opts = dict(interim_results=interim, vad_events=vad_events, language=language, utterance_end_ms=utterance_end_ms)
    if diarize:
        from .. import diarization

        if diarization.missing() is not None and not url:
            fail(f"--diarize needs the diarize extra ({diarization.missing()} is missing): pip install 'voxa[diarize]'")
        opts["diarize"] = True
    if wake:
        from .. import wake as ww

        for w in wake:
            ww.parse(w)
        opts["wake"] = tuple(wake)
    if endpointing is not None:  # else the default of the stream options, or of the server with --url
        opts["endpointing_ms"] = None if endpointing == "false" else int(endpointing)
    tty = sys.stdout.isatty() and not as_json

    def show(msg: dict) -> None:
        if as_json:
            out.print(json.dumps(msg), markup=False, highlight=False, soft_wrap=True)
        else:
            _line(msg, tty)

    try:
        if url:
            _remote(url, file, _query(model, opts), api_key, speed, show)
        else:
            _local(file, model, opts, speed, show)
    except VoxaError as e:
        fail(str(e))
    except KeyboardInterrupt:
        raise typer.Exit(130)

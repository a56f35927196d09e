"""``voxa agent`` (the voice agent alone: its page, /offer and /v1/agent) and ``voxa talk``
(play recordings to an agent as the user and print per-turn timings)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import VoxaError
from . import app, fail, out
from .serve import ALLOWED_HOST, ALLOWED_ORIGIN, API_KEY, HOST, PORT, server_config

STAGES = (("turn", "turn_decided_ms"), ("asr", "asr_final_ms"), ("llm", "llm_first_token_ms"),
          ("tts", "tts_first_audio_ms"), ("v2v", "voice_to_voice_ms"))


@app.command()
def agent(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="agent.toml (see voxa.agent.config)."),
    host: str = HOST,
    port: int = PORT,
    api_key: Optional[List[str]] = API_KEY,
    allowed_host: Optional[List[str]] = ALLOWED_HOST,
    allowed_origin: Optional[List[str]] = ALLOWED_ORIGIN,
):
    """Run the voice agent: open http://HOST:PORT/agent in a browser and talk."""
    from ..agent import load_config
    from ..server import serve as run

    try:
        server = server_config(host, port, api_key, allowed_host, allowed_origin, agent=load_config(config))
    except VoxaError as e:
        fail(str(e))
    out.print(f"voice agent: http://{host}:{port}/agent", markup=False)
    run(server, preload_agent=True)


@app.command()
def talk(
    files: List[Path] = typer.Argument(..., help="Recordings to say, one per turn."),
    url: str = typer.Option("ws://127.0.0.1:8000/v1/agent", "--url", help="The agent's WebSocket."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="VOXA_API_KEY"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Save the bot's audio per turn and session.json here."),
    barge_in: Optional[float] = typer.Option(None, "--barge-in", min=0.0,
                                             help="Start each next recording this many seconds into the bot's answer."),
    as_json: bool = typer.Option(False, "--json", help="Print the session as JSON."),
):
    """Play recordings to a running voice agent, turn by turn; print what was heard and said, with timings."""
    from ..agent import talk as talk_mod

    for f in files:
        if not f.is_file():
            fail(f"{f}: no such file")
    try:
        session = asyncio.run(talk_mod.talk(url, [str(f) for f in files], api_key=api_key, barge_in=barge_in))
    except VoxaError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot reach the agent at {url}: {e}")
    except Exception as e:  # websockets' handshake refusals (401, 429...)
        fail(f"the agent at {url} refused the session: {e}")
    if out_dir:
        talk_mod.save(session, out_dir)
    if as_json:
        out.print(json.dumps(talk_mod.as_dict(session), indent=2), markup=False)
        return
    if session.greeting:
        out.print(f"bot: {session.greeting}", markup=False)
    for n, turn in enumerate(session.turns, 1):
        out.print(f"[{n}] you: {turn.transcript or '(nothing heard)'}", markup=False)
        out.print(f"[{n}] bot: {turn.answer or '(no answer)'}", markup=False)
        if turn.latency:
            out.print("    " + "  ".join(f"{name} {turn.latency[key]:.0f} ms" for name, key in STAGES
                                         if turn.latency.get(key) is not None), markup=False)
        if turn.barge_in_stop_ms is not None:
            out.print(f"    barge-in: bot audio stopped {turn.barge_in_stop_ms:.0f} ms after the interruption began",
                      markup=False)
    if not session.turns or not any(t.latency for t in session.turns):
        fail("the agent answered no turn", 1)

"""``voxa talk``: play recordings to a voice agent as the user, turn by turn, over ``WS /v1/agent``.

Each recording is sent at real-time pace in 20 ms messages, then silence (as a microphone
would) until the bot has answered and gone quiet. The bot's audio is kept (one WAV per turn
and the whole session), and the server's per-turn ``latency`` events are returned. With
``barge_in`` the next recording starts ``barge_in`` seconds after the bot starts answering,
and the time until the bot's audio stops is measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import audio as audio_io
from ..errors import InputError

CHUNK_S = 0.02


@dataclass
class Turn:
    file: str
    transcript: str = ""
    answer: str = ""
    latency: dict | None = None
    bot_audio: np.ndarray | None = None
    barge_in_stop_ms: float | None = None  # from the start of the interrupting speech to the bot's last audio
    interrupted: bool = False


@dataclass
class Session:
    sample_rate: int = 24000
    greeting: str = ""
    greeting_audio: np.ndarray | None = None
    turns: list[Turn] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class _Listener:
    def __init__(self):
        self.audio: list[tuple[float, bytes]] = []  # (arrival time, pcm)
        self.events: list[tuple[float, dict]] = []
        self.rate = 24000
        self.closed = asyncio.Event()
        self.error: Exception | None = None

    async def run(self, ws):
        try:
            async for msg in ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    self.audio.append((now, msg))
                else:
                    event = json.loads(msg)
                    if event.get("type") == "session":
                        self.rate = event["output_sample_rate"]
                    self.events.append((now, event))
        except Exception as e:  # the connection ended: kept for the session's report
            self.error = e
        finally:
            self.closed.set()

    def last_audio(self) -> float:
        return self.audio[-1][0] if self.audio else 0.0

    def audio_since(self, t: float) -> np.ndarray:
        return audio_io.from_pcm16(b"".join(b for at, b in self.audio if at >= t))

    def events_since(self, t: float, kind: str) -> list[dict]:
        return [e for at, e in self.events if at >= t and e.get("type") == kind]


async def _send_silence_until(ws, listener: _Listener, done, timeout: float) -> None:
    silence = np.zeros(int(16000 * CHUNK_S), dtype="<i2").tobytes()
    t0 = time.monotonic()
    nxt = t0
    while not done() and time.monotonic() - t0 < timeout and not listener.closed.is_set():
        await ws.send(silence)
        nxt += CHUNK_S
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))


async def _send_audio(ws, samples: np.ndarray, listener: _Listener, stop_when=None) -> None:
    pcm = audio_io.to_pcm16(samples)
    n = 2 * int(16000 * CHUNK_S)  # bytes per message
    t0 = time.monotonic()
    for k, i in enumerate(range(0, len(pcm), n)):
        if listener.closed.is_set():
            return
        await ws.send(pcm[i:i + n])
        await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_S - time.monotonic()))


def _quiet(listener: _Listener, since: float, gap: float) -> bool:
    """The bot answered after ``since`` and has sent no audio for ``gap`` seconds."""
    last = listener.last_audio()
    return last > since and time.monotonic() - last > gap


async def talk(url: str, files: list[str], *, api_key: str | None = None, barge_in: float | None = None,
               turn_timeout: float = 30.0, greeting_timeout: float = 15.0, ready_timeout: float = 300.0) -> Session:
    import websockets

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    clips = [(f, audio_io.decode(f)) for f in files]
    session = Session()
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        listener = _Listener()
        reader = asyncio.create_task(listener.run(ws))
        # the server says "session" once its models are loaded (the first session loads them)
        ready = time.monotonic()
        while not listener.events_since(0.0, "session") and not listener.closed.is_set() and \
                time.monotonic() - ready < ready_timeout:
            await asyncio.sleep(0.02)
        if not listener.events_since(0.0, "session"):
            said = [e.get("message", "") for e in listener.events_since(0.0, "error")]
            raise InputError(said[0] if said else f"the agent at {url} started no session within {ready_timeout:g} s")
        start = time.monotonic()
        # the greeting: wait until it has been said (or a few seconds if there is none)
        await _send_silence_until(ws, listener, lambda: _quiet(listener, start, 0.8) or
                                  (not listener.audio and time.monotonic() - start > 3.0), greeting_timeout)
        session.greeting = " ".join(e["text"] for e in listener.events_since(start, "agent_response"))
        session.greeting_audio = listener.audio_since(start)
        for n, (name, samples) in enumerate(clips):
            turn = Turn(name)
            t_send = time.monotonic()
            await _send_audio(ws, samples, listener)
            t_end = time.monotonic()
            interrupting = barge_in is not None and n + 1 < len(clips)

            def answered():
                lat = listener.events_since(t_send, "latency")
                if interrupting:  # start the next turn barge_in s after the bot starts answering
                    return bool(lat) and listener.last_audio() > t_end and \
                        time.monotonic() - _first_audio(listener, t_end) >= barge_in
                # the answer to the user's last words: a pause inside the recording may have
                # ended a turn (and been answered) before the rest of it was said
                return _latest(listener, t_send, "latency") > _latest(listener, t_send, "transcript") > 0 and \
                    _quiet(listener, t_end, 0.8)

            await _send_silence_until(ws, listener, answered, turn_timeout)
            turn.transcript = " ".join(e["text"] for e in listener.events_since(t_send, "transcript") if e["is_final"])
            turn.answer = " ".join(e["text"] for e in listener.events_since(t_send, "agent_response"))
            lat = listener.events_since(t_send, "latency")
            turn.latency = lat[-1] if lat else None  # the answer to the end of the recording
            turn.bot_audio = listener.audio_since(t_end)
            session.turns.append(turn)
            if interrupting and turn.latency:
                nxt_name, nxt = clips[n + 1]
                t0 = time.monotonic()
                onset = t0 + _onset(nxt)
                await _send_audio(ws, nxt, listener)
                clips[n + 1] = (nxt_name, np.zeros(0, np.float32))  # already said
                stop = _barge_in_stop(listener, t0, onset, time.monotonic())
                turn.interrupted = stop is not None
                turn.barge_in_stop_ms = round((stop - onset) * 1000.0, 1) if turn.interrupted else None
        await asyncio.sleep(0.2)
        session.events = [e for _, e in listener.events]
        session.sample_rate = listener.rate
        reader.cancel()
    return session


def _latest(listener: _Listener, t: float, kind: str) -> float:
    """Arrival time of the latest ``kind`` event since ``t`` (final transcripts only), or 0."""
    return max((at for at, e in listener.events if at >= t and e.get("type") == kind
                and (kind != "transcript" or e.get("is_final"))), default=0.0)


def _barge_in_stop(listener: _Listener, t0: float, onset: float, t_done: float) -> float | None:
    """When the bot's audio stopped, if the user's speech from ``onset`` interrupted it: the bot
    was talking at the onset (its audio, which the server sends at playback pace, was arriving),
    the server announced an interruption while that answer was still arriving, and the time is
    that of the answer's last audio. A later answer (the bot may answer a pause inside the
    user's speech, and be cut off in turn) comes after a gap in the audio and is not counted."""
    run: list[float] = []
    for at, _ in listener.audio:
        if onset - 0.3 <= at <= t_done:
            if run and at - run[-1] > 0.25:  # audio comes at playback pace: a gap is a stop
                break
            run.append(at)
    if not run or run[0] > onset + 0.1:
        return None  # the bot had finished, or not started
    cut = next((at for at, e in listener.events if at >= t0 and e.get("type") == "interrupted"), None)
    if cut is None or not any(cut - 0.3 <= at <= cut for at in run) or max(run) > t_done - 0.2:
        return None  # no interruption, or the answer had ended before it came, or went on to the end
    return max(run)


def _first_audio(listener: _Listener, since: float) -> float:
    return next((at for at, _ in listener.audio if at > since), float("inf"))


def _onset(samples: np.ndarray, threshold: float = 0.02) -> float:
    """Seconds into ``samples`` where speech starts (first 20 ms above an RMS threshold)."""
    n = int(16000 * CHUNK_S)
    for i in range(0, max(0, len(samples) - n), n):
        if np.sqrt(np.mean(samples[i:i + n] ** 2)) > threshold:
            return i / 16000
    return 0.0


def save(session: Session, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, turn in enumerate(session.turns, 1):
        if turn.bot_audio is not None and turn.bot_audio.size:
            path = out / f"turn{n:02d}.wav"
            audio_io.write(path, turn.bot_audio, session.sample_rate)
            written.append(path)
    (out / "session.json").write_text(json.dumps(as_dict(session), indent=2))
    return written


def as_dict(session: Session) -> dict:
    return {"greeting": session.greeting, "output_sample_rate": session.sample_rate, "turns": [
        {"file": t.file, "transcript": t.transcript, "answer": t.answer, "latency": t.latency,
         "interrupted": t.interrupted, "barge_in_stop_ms": t.barge_in_stop_ms} for t in session.turns]}

"""Voice-agent latency: voxa's agent, a stock Pipecat pipeline, voxa over Twilio's μ-law; one run, local models.

Turns: real LibriSpeech test-other utterances from ../shared/eval (2–9 s each), four per
session, one speaker per session, played by ``voxa talk``'s client over ``WS /v1/agent`` (for
telephony, by a Twilio phone client, below) at real-time pace (20 ms messages, silence between
turns as a microphone sends it). Each turn waits until the bot has answered and gone quiet.

Rows (same server process, same LLM, same voice, same latency probe; voxa and pipecat-stock also
the same transport):
* **voxa**: the default agent: voxa's streaming recogniser (tiny.en, interim results, finalized
  when Silero reports the pause), end of turn in three tiers (smart-turn v3.2 at a 0.2 s pause; a final text that ends a
  sentence at 0.6 s; 2 s), barge-in
  after 0.5 s of speech.
* **pipecat-stock**: Pipecat 1.14's own pieces with its defaults: ``WhisperSTTService``
  (segmented faster-whisper: transcribes after the VAD cut) on the same tiny.en weights, the
  default user-turn strategies (VAD/transcript start, smart-turn v3 stop), barge-in at VAD start.
* **telephony**: the voxa agent of the first row (same settings, same shared models) over ``WS
  /v1/telephony/twilio`` instead: a phone client plays Twilio's side of a Media Stream as
  tests/test_telephony.py's ``Phone`` does (``connected``, ``start``, then one base64 8 kHz μ-law
  ``media`` frame every 20 ms: the same recordings, decoded at 8 kHz and μ-law encoded while the
  caller speaks, μ-law silence otherwise), plays the bot's ``media`` on a clock, echoes each ``mark``
  once the audio before it has played and, on ``clear``, drops what is left and echoes the pending
  marks. The server decodes the μ-law and resamples it to 16 kHz, and encodes its answer back to
  8 kHz μ-law. The same sessions, turn for turn, with ``voxa talk``'s waits.
* **realtime**: the same voxa agent over ``WS /v1/realtime`` (the OpenAI Realtime protocol), played
  by the official ``openai`` SDK's realtime client (:class:`RealtimeClient`): 24 kHz PCM in 20 ms
  ``input_audio_buffer.append`` events, the answer as ``response.output_audio.delta`` events.
All rows: the bundled SmolLM2-135M on voxa's default runtime (CTranslate2 int8; llama.cpp when
llama-cpp-python is installed: the report's machine line says which), one thread, temperature
0, at most 60 tokens per answer (the answer's length does not change the latency figures),
hibari's voice through ``VoxaTTSService`` (watermarked).

Per turn, from the end of the user's speech (Silero's stop minus its 0.2 s window): turn decided,
ASR final, LLM first token, TTS first audio, voice-to-voice (the first bot audio the server
sends). These are the server's own figures (its TurnTimer, the same code for every row, on the
same clock): voxa and pipecat-stock send them to the client as JSON ``latency`` events; the
Twilio socket sends no JSON, so for telephony the same rows are read from the log the server
writes them to (``voxa.agent`` at INFO; the server runs in this process), each turn taking the
last row logged after its recording started, as the other rows take the last event. So
telephony's voice-to-voice runs, like voxa's, from Silero's end of speech (heard here in the
μ-law audio) to the first bot audio its output transport sends, before the μ-law encoding: the
encoding and the socket are left out of both rows. As a cross-check telephony is also timed at
the phone, from the same end of speech (the row's, placed on this process's clock: the time the
row was logged minus its voice-to-voice) to the first bot ``media`` frame the phone receives
that is not silence; the report gives its p50 / p90 under the table (it adds the μ-law encoding,
the loopback socket and any silence the answer starts with).

Barge-in: sessions of two turns where the second recording starts 1 s into the bot's answer;
"stop" runs to the last bot audio the client receives, from the onset of that speech: where its
loudness first rises (``voxa talk``'s onset), and where Silero first hears speech (first 32 ms
window at p >= 0.5, the same model the agents use). On test-other recordings the loudness rises
0–0.4 s before the speech does (breath, noise), so the rule's own speech is subtracted from the
second. For telephony the same rule, at the phone: the bot's ``media``
frames in place of its audio messages, the ``clear`` (what Pipecat's Twilio serializer sends on
an interruption) in place of the ``interrupted`` event; "stop" is the last bot ``media`` frame
received (the clear comes just before it; Twilio drops what it has not played).

    python benchmarks/agent_latency.py [--sessions 6] [--barge 5] [--rows voxa,pipecat-stock,telephony,realtime]

Targets (voxa): voice-to-voice p50 <= 700 ms, p90 <= 1,000 ms; barge-in stop <= 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from fastapi import WebSocket  # module level: the /stock route's annotation must resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command, machine_facts, write_report  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
# speech needed before an interruption: interrupt_speech_s (the voxa agent, also behind the phone); VAD start
RULE_MS = {"voxa": 500.0, "pipecat-stock": 200.0, "telephony": 500.0, "realtime": 500.0}
STAGES = ("turn_decided_ms", "asr_final_ms", "llm_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms")


def sessions(n: int, per: int = 4) -> list[list[Path]]:
    """``n`` sessions of ``per`` utterances (2–9 s), one speaker each."""
    import soundfile as sf

    folder = EVAL / "librispeech-test-other-Resemblyzer"
    by_speaker: dict[str, list[Path]] = {}
    for f in sorted(folder.glob("*.flac")):
        if 2.0 <= sf.info(f).duration <= 9.0:
            by_speaker.setdefault(f.stem.split("-")[0], []).append(f)
    groups = [files[:per] for files in by_speaker.values() if len(files) >= per]
    if len(groups) < n:
        raise SystemExit(f"only {len(groups)} speakers have {per} utterances of 2-9 s in {folder}")
    return groups[:n]


def stock_route(app):
    """WS /stock: the same session as /v1/agent, built from Pipecat's stock pieces."""
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.frames.frames import OutputTransportMessageUrgentFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.services.whisper.stt import WhisperSTTService
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
    from pipecat.workers.runner import WorkerRunner

    from voxa.agent.llm import make_llm
    from voxa.agent.pipeline import Events, TurnTimer
    from voxa.agent.tts import VoxaTTSService
    from voxa.agent.wire import AgentSerializer
    from voxa.registry import resolve

    tiny = str(resolve("tiny.en")[1])

    @app.websocket("/stock")
    async def stock(ws: WebSocket):
        cfg = app.state.config.agent
        await ws.accept()
        tts = VoxaTTSService(voice=cfg.voice)
        await ws.send_text(json.dumps({"type": "session", "output_sample_rate": tts.voice.sample_rate}))
        transport = FastAPIWebsocketTransport(ws, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, allowed_origins=[],
            audio_in_sample_rate=16000, audio_out_sample_rate=tts.voice.sample_rate, serializer=AgentSerializer(16000)))
        stt = WhisperSTTService(model=tiny, device="cpu", compute_type="int8")
        user, assistant = LLMContextAggregatorPair(
            LLMContext(), user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))
        pipeline = Pipeline([transport.input(), stt, Events("user"), user,
                             make_llm(cfg.llm, system_prompt=cfg.system_prompt), tts, Events("bot"),
                             transport.output(), assistant])
        worker = None

        def report(row):
            asyncio.get_running_loop().create_task(worker.queue_frame(OutputTransportMessageUrgentFrame(message=row)))

        worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=16000,
                                                                audio_out_sample_rate=tts.voice.sample_rate),
                                observers=[TurnTimer(report)], enable_rtvi=False, idle_timeout_secs=None)

        @transport.event_handler("on_client_disconnected")
        async def _gone(transport, client):
            await worker.cancel(reason="client disconnected")

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()


def serve():
    from voxa.agent import AgentConfig, LLMConfig
    from voxa.server.config import ServerConfig

    from voxa.server import create_app, serve_in_background

    cfg = AgentConfig(greeting="", max_sessions=2, llm=LLMConfig(max_tokens=60))
    app = create_app(ServerConfig(api_keys=(), agent=cfg))
    from voxa.agent import Agent

    app.state.agent = Agent(cfg)  # models loaded before the first turn, for both rows
    stock_route(app)
    return serve_in_background(app).replace("http://", "ws://")


def pct(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def onset_shift(path) -> float:
    """Seconds from where the recording's loudness rises (voxa talk's onset) to where Silero
    first hears speech in it."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    from voxa import audio
    from voxa.agent.talk import _onset

    x = audio.decode(path)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    vad = SileroVADAnalyzer()
    vad.set_sample_rate(16000)
    first = next((i / 16000 for i in range(0, len(pcm) - 512, 512)
                  if vad.voice_confidence(pcm[i:i + 512].tobytes()) >= 0.5), 0.0)
    return first - _onset(x)


# --------------------------------------------------------------------------- the telephony row
class ServerRows(logging.Handler):
    """The server's own per-turn ``latency`` rows, as its TurnTimer logs them on ``voxa.agent``
    (the Twilio socket does not carry them), with when each was logged."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.rows: list[tuple[float, dict]] = []

    def emit(self, record):
        msg = record.getMessage()
        if '"latency"' in msg:
            try:
                row = json.loads(msg)
            except ValueError:
                return
            if isinstance(row, dict) and row.get("type") == "latency":
                self.rows.append((time.monotonic(), row))

    def since(self, t: float) -> list[dict]:
        return [r for at, r in self.rows if at >= t]

    def last(self, t: float) -> tuple[float, dict | None]:
        """The last row logged since ``t``, and when (0, None: none)."""
        return next(((at, r) for at, r in reversed(self.rows) if at >= t), (0.0, None))

    def latest(self, t: float) -> float:
        return max((at for at, _ in self.rows if at >= t), default=0.0)


@functools.cache
def server_rows() -> ServerRows:
    handler = ServerRows()
    log = logging.getLogger("voxa.agent")
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)  # no other handler is set for voxa's INFO records: only this one sees them
    log.addHandler(handler)
    return handler


@dataclass
class PhoneTurn:
    file: str
    transcript: str = ""  # the server's (its latency row's user_text)
    latency: dict | None = None  # the server's latency row for the turn
    at_phone_ms: float | None = None  # the row's end of speech -> the first bot media frame with sound
    barge_in_stop_ms: float | None = None
    interrupted: bool = False


async def call(url: str, files: list[Path], *, barge_in: float | None = None, turn_timeout: float = 30.0,
               greeting_timeout: float = 15.0) -> list[PhoneTurn]:
    """One call of ``files`` turn by turn, with ``voxa talk``'s waits: the greeting (or 3 s of
    silence), then each recording at real-time pace and silence until the answer to it is over
    (its latency row logged after the last ``clear``, the turn's start, and no media for 0.8 s);
    with ``barge_in`` the next recording starts that long after the answer's first media, and
    the stop is measured by ``voxa talk``'s own rule on the media frames and the ``clear``."""
    from voxa import audio
    from voxa.agent.phone import FRAME, Phone
    from voxa.agent.talk import _barge_in_stop, _onset

    rows = server_rows()
    clips = [(str(f), audio.decode(f, 8000), audio.decode(f)) for f in files]  # sent at 8 kHz; onsets at 16
    for _ in range(100):  # the previous session's slot comes back a moment after it ended (1013 till then)
        phone = await Phone(url).__aenter__()
        start = time.monotonic()
        await phone.until(lambda: phone.quiet(start, 0.8) or (not phone.media and time.monotonic() - start > 3.0),
                          greeting_timeout)
        if phone.closed is None:
            break
        await phone.__aexit__()
        if phone.closed[0] != 1013:
            raise RuntimeError(f"the call was refused: {phone.closed}")
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError("no session slot came free")
    turns: list[PhoneTurn] = []
    try:
        for n, (name, x8, x16) in enumerate(clips):
            if x8.size:
                clip = phone.say(x8)
                t_send, t_end = await phone.sent(clip)
            else:  # said already, as the interruption
                clip, t_send = 0, time.monotonic()
                t_end = t_send
            interrupting = barge_in is not None and n + 1 < len(clips)

            def answered():
                if interrupting:
                    first = next((at for at, _, _ in phone.media if at > t_end), None)
                    return bool(rows.since(t_send)) and first is not None and time.monotonic() - first >= barge_in
                turn_start = max((at for at in phone.clears if at >= t_send), default=0.0)
                return rows.latest(t_send) > turn_start and phone.quiet(t_end, 0.8)

            await phone.until(answered, turn_timeout)
            if phone.closed is not None:
                raise RuntimeError(f"the server ended the call: {phone.closed}")
            logged, row = rows.last(t_send)  # the answer to the end of the recording, as voxa talk takes it
            turn = PhoneTurn(name, transcript=(row or {}).get("user_text", ""), latency=row)
            if row and row.get("voice_to_voice_ms") is not None:
                end = logged - row["voice_to_voice_ms"] / 1000.0  # the server's end of speech, on this clock
                heard = next((at for at, _, peak in phone.media if at > end and peak > 0), None)
                turn.at_phone_ms = round((heard - end) * 1000.0, 1) if heard else None
            turns.append(turn)
            if interrupting and turn.latency:
                nxt_name, nxt8, nxt16 = clips[n + 1]
                nxt = phone.say(nxt8)
                t0, t_last = await phone.sent(nxt)
                onset = t0 + _onset(nxt16)
                clips[n + 1] = (nxt_name, np.zeros(0, np.float32), np.zeros(0, np.float32))  # already said
                seen = SimpleNamespace(audio=[(at, None) for at, _, _ in phone.media],  # as voxa talk's listener
                                       events=[(at, {"type": "interrupted"}) for at in phone.clears])
                stop = _barge_in_stop(seen, t0, onset, t_last + FRAME / 8000)
                turn.interrupted = stop is not None
                turn.barge_in_stop_ms = round((stop - onset) * 1000.0, 1) if turn.interrupted else None
        await asyncio.sleep(0.2)
    finally:
        await phone.__aexit__()
    return turns


# --------------------------------------------------------------------------- the realtime row
class RealtimeClient:
    """The user's side of a ``WS /v1/realtime`` conversation through the official ``openai`` SDK:
    a microphone sending 20 ms ``input_audio_buffer.append`` events (24 kHz PCM) in real time,
    silence between recordings, and a reader noting when each event arrives."""

    def __init__(self, conn):
        self.conn, self.queue, self.sent_at = conn, [], {}
        self.audio: list[tuple[float, float]] = []  # (arrival, peak) of each response.output_audio.delta
        self.events: list[tuple[float, object]] = []

    def say(self, x16: np.ndarray) -> int:
        from voxa import audio

        self.queue.append(audio.to_pcm16(audio.resample(x16, 16000, 24000)))
        return len(self.sent_at) + len(self.queue) - 1  # its index

    async def mic(self):
        import base64

        step, t0, k, current, n = 960, time.monotonic(), 0, b"", -1
        while True:
            if not current and self.queue:
                current, n = self.queue.pop(0), len(self.sent_at)
                self.sent_at[n] = [time.monotonic(), None]
            chunk, current = (current[:step], current[step:]) if current else (bytes(step), b"")
            if not current and n >= 0 and self.sent_at[n][1] is None:
                self.sent_at[n][1] = time.monotonic() + len(chunk) / 48000
            await self.conn.input_audio_buffer.append(audio=base64.b64encode(chunk.ljust(step, b"\0")).decode())
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))

    async def read(self):
        import base64

        async for ev in self.conn:
            now = time.monotonic()
            if ev.type == "response.output_audio.delta":
                pcm = np.frombuffer(base64.b64decode(ev.delta), "<i2")
                self.audio.append((now, float(np.abs(pcm).max()) if pcm.size else 0.0))
            else:
                self.events.append((now, ev))

    async def sent(self, n: int) -> tuple[float, float]:
        while n not in self.sent_at or self.sent_at[n][1] is None:
            await asyncio.sleep(0.01)
        return tuple(self.sent_at[n])

    def quiet(self, since: float, gap: float) -> bool:
        last = max((at for at, _ in self.audio), default=0.0)
        return time.monotonic() - max(last, since) >= gap

    def cancelled_at(self) -> list[float]:
        return [at for at, ev in self.events if ev.type == "response.done" and ev.response.status == "cancelled"]


async def realtime_call(url: str, files: list[Path], *, barge_in: float | None = None,
                        turn_timeout: float = 30.0) -> list[PhoneTurn]:
    """One conversation of ``files`` over ``WS /v1/realtime``, with the telephony row's waits and
    measures: the server's own latency rows (its log), the first bot audio with sound at the
    client, and the barge-in stop on the audio deltas with a cancelled ``response.done`` as the
    interruption."""
    from openai import AsyncOpenAI

    from voxa import audio
    from voxa.agent.talk import _barge_in_stop, _onset

    rows = server_rows()
    clips = [(str(f), audio.decode(f)) for f in files]
    client = AsyncOpenAI(base_url=url + "/v1", api_key="none")
    turns: list[PhoneTurn] = []
    for _ in range(100):  # the previous session's slot comes back a moment after it ended
        try:
            conn_cm = client.realtime.connect(model="gpt-realtime")
            conn = await conn_cm.__aenter__()
            break
        except Exception as e:  # 429 while the slot is still held
            if "429" not in str(e):
                raise
            await asyncio.sleep(0.2)
    else:
        raise RuntimeError("no session slot came free")
    rt = RealtimeClient(conn)
    tasks = [asyncio.create_task(rt.mic()), asyncio.create_task(rt.read())]

    async def until(pred, timeout):
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    try:
        await until(lambda: any(ev.type == "session.created" for _, ev in rt.events), 15)
        for n, (name, x16) in enumerate(clips):
            if x16.size:
                t_send, t_end = await rt.sent(rt.say(x16))
            else:
                t_send = t_end = time.monotonic()
            interrupting = barge_in is not None and n + 1 < len(clips)

            def answered():
                if interrupting:
                    first = next((at for at, _ in rt.audio if at > t_end), None)
                    return bool(rows.since(t_send)) and first is not None and time.monotonic() - first >= barge_in
                return rows.latest(t_send) > max(rt.cancelled_at() + [t_send]) and rt.quiet(t_end, 0.8)

            await until(answered, turn_timeout)
            logged, row = rows.last(t_send)
            turn = PhoneTurn(name, transcript=(row or {}).get("user_text", ""), latency=row)
            if row and row.get("voice_to_voice_ms") is not None:
                end = logged - row["voice_to_voice_ms"] / 1000.0
                heard = next((at for at, peak in rt.audio if at > end and peak > 0), None)
                turn.at_phone_ms = round((heard - end) * 1000.0, 1) if heard else None
            turns.append(turn)
            if interrupting and turn.latency:
                nxt_name, nxt16 = clips[n + 1]
                t0, t_last = await rt.sent(rt.say(nxt16))
                onset = t0 + _onset(nxt16)
                clips[n + 1] = (nxt_name, np.zeros(0, np.float32))
                seen = SimpleNamespace(audio=[(at, None) for at, _ in rt.audio],
                                       events=[(at, {"type": "interrupted"}) for at in rt.cancelled_at()])
                stop = _barge_in_stop(seen, t0, onset, t_last)
                turn.interrupted = stop is not None
                turn.barge_in_stop_ms = round((stop - onset) * 1000.0, 1) if turn.interrupted else None
        await asyncio.sleep(0.2)
    finally:
        for t in tasks:
            t.cancel()
        await conn_cm.__aexit__(None, None, None)
    return turns


def run_row(base: str, row: str, groups, barge: int) -> dict:
    if row == "telephony":
        def play(files, barge_in=None):
            return asyncio.run(call(base + "/v1/telephony/twilio", files, barge_in=barge_in))
    elif row == "realtime":
        def play(files, barge_in=None):
            return asyncio.run(realtime_call(base.replace("ws://", "http://"), files, barge_in=barge_in))
    else:
        from voxa.agent.talk import talk

        url = base + ("/v1/agent" if row == "voxa" else "/stock")

        def play(files, barge_in=None):
            return asyncio.run(talk(url, [str(f) for f in files], barge_in=barge_in)).turns

    turns, stops, vad_stops, missed, at_phone = [], [], [], 0, []
    for n, files in enumerate(groups, 1):
        said = play(files)
        for t in said:
            if t.latency:
                turns.append(t.latency)
            else:
                missed += 1
        phone = [getattr(t, "at_phone_ms", None) for t in said]
        at_phone += [v for v in phone if v is not None]
        print(f"[{row}] session {n}/{len(groups)}: {len(said)} turns, "
              f"v2v {[t.latency and t.latency['voice_to_voice_ms'] for t in said]}"
              + (f", at the client {phone}" if row in ("telephony", "realtime") else ""), file=sys.stderr, flush=True)
    for files in groups[:barge]:
        said = play(files[:2], barge_in=1.0)
        if said and said[0].barge_in_stop_ms is not None:
            stops.append(said[0].barge_in_stop_ms)
            vad_stops.append(said[0].barge_in_stop_ms - 1000.0 * onset_shift(files[1]))
        print(f"[{row}] barge-in: {said[0].barge_in_stop_ms if said else None}", file=sys.stderr, flush=True)
    out = {"row": row, "turns": len(turns), "unanswered": missed, "barge_ins": len(stops), "barge_tried": barge}
    for stage in STAGES:
        vals = [t[stage] for t in turns if t.get(stage) is not None]
        out[stage] = (pct(vals, 50), pct(vals, 90))
    out["barge_stop"] = (pct(stops, 50), pct(stops, 90))
    out["barge_stop_vad"] = (pct(vad_stops, 50), pct(vad_stops, 90))
    if row in ("telephony", "realtime"):
        out["at_phone_ms"] = (pct(at_phone, 50), pct(at_phone, 90))
    return out


def report(rows, argv) -> str:
    def f(pair):
        return " / ".join("–" if np.isnan(v) else f"{v:.0f}" for v in pair)

    lines = ["# Voice-agent latency", "",
             f"{datetime.date.today().isoformat()}; `{command('benchmarks/agent_latency.py', argv)}`", "",
             "Milliseconds from the end of the user's speech, p50 / p90 over answered turns "
             "(see the script's docstring for the rows and the definitions).", "",
             "| row | turns | turn decided | ASR final | LLM first token | TTS first audio | **voice-to-voice** | "
             "barge-in stop: from loudness onset | from Silero's onset | **after the speech its rule needs** |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | error: {r['error']} |||||||")
            continue
        lines.append(f"| {r['row']} | {r['turns']} (+{r['unanswered']} unanswered) | {f(r['turn_decided_ms'])} | "
                     f"{f(r['asr_final_ms'])} | {f(r['llm_first_token_ms'])} | {f(r['tts_first_audio_ms'])} | "
                     f"**{f(r['voice_to_voice_ms'])}** | {f(r['barge_stop'])} ({r['barge_ins']}/{r['barge_tried']}) | "
                     f"{f(r['barge_stop_vad'])} | **{f(tuple(v - RULE_MS[r['row']] for v in r['barge_stop_vad']))}** |")
    lines += ["", "Targets (voxa): voice-to-voice p50 <= 700 ms and p90 <= 1,000 ms; barge-in stop <= 300 ms. "
              "voxa interrupts only after 0.5 s of continuous speech (`interrupt_speech_s`, so backchannels "
              "do not); stock Pipecat at the VAD start (0.2 s of speech). The last column subtracts that "
              "speech from the stop time from Silero's onset: how long the bot went on once the rule was met. "
              "The loudness of these recordings rises 0–0.4 s before Silero hears speech. A barge-in counts "
              "when the bot was talking at the onset, the server announced the interruption while that "
              "answer was still arriving, and its audio stopped before the user finished (an answer that "
              "ended first is not counted).", *telephony_note(rows), "",
              "Machine:", *machine_facts(("pipecat-ai", "faster-whisper", "ctranslate2", "llama-cpp-python",
                                           "onnxruntime", "hibari-tts"))]
    return "\n".join(lines) + "\n"


def telephony_note(rows) -> list[str]:
    """The notes on the rows timed at the client too (telephony, realtime)."""
    return _note(rows, "telephony", (
        "telephony: the voxa agent over `WS /v1/telephony/twilio`, the same turns sent as Twilio sends "
        "them (8 kHz μ-law, 20 ms `media` frames) to a client that plays the answer on a clock and echoes "
        "its marks. Its stages, voice-to-voice included, are the server's own per-turn rows (its TurnTimer, "
        "as for the other rows; read from the server's log, since the Twilio socket carries no JSON): "
        "from Silero's end of speech in the μ-law audio to the first bot audio the server sends, before "
        "its μ-law encoding. Timed at the phone instead, from the same end of speech to the first bot "
        "`media` frame that is not silence there: {at} ms (p50 / p90; this adds the μ-law encoding, "
        "the loopback socket and any silence the answer starts with). Its barge-in stop is "
        "the same rule on the `media` frames, with the `clear` as the interruption.")) + _note(rows, "realtime", (
        "realtime: the voxa agent over `WS /v1/realtime` (the OpenAI Realtime protocol), the same turns "
        "sent by the official `openai` SDK's realtime client as 20 ms `input_audio_buffer.append` events "
        "(24 kHz PCM, base64), in real time. Its stages are the server's own per-turn rows, read from its log "
        "as for telephony (the Realtime socket carries only Realtime events). Timed at the client instead, "
        "from the same end of speech to the first `response.output_audio.delta` with sound: "
        "{at} ms (p50 / p90). Barge-in: the same rule on the audio deltas, with a `response.done` "
        "whose status is `cancelled` as the interruption."))


def _note(rows, row: str, text: str) -> list[str]:
    r = next((r for r in rows if r["row"] == row and "error" not in r), None)
    if r is None:
        return []
    return ["", text.format(at=" / ".join("–" if np.isnan(v) else f"{v:.0f}" for v in r["at_phone_ms"]))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=6, help="sessions of 4 turns per row")
    ap.add_argument("--barge", type=int, default=5, help="barge-in sessions per row")
    ap.add_argument("--rows", default="voxa,pipecat-stock,telephony,realtime", help=f"of {','.join(RULE_MS)}")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_latency.md"))
    args = ap.parse_args(argv)
    if unknown := set(args.rows.split(",")) - set(RULE_MS):
        ap.error(f"unknown rows {sorted(unknown)}: choose from {','.join(RULE_MS)}")
    groups = sessions(args.sessions)
    base = serve()
    rows = []
    for row in args.rows.split(","):
        try:
            rows.append(run_row(base, row, groups, args.barge))
        except Exception as e:  # keep going: the table says what failed
            import traceback

            traceback.print_exc()
            rows.append({"row": row, "error": f"{type(e).__name__}: {e}"})
    return write_report(args.out, report(rows, argv), rows)


if __name__ == "__main__":
    sys.exit(main())

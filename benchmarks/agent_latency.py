"""Voice-agent latency: voxa's agent next to a stock Pipecat pipeline, in one run, all models local.

Turns: real LibriSpeech test-other utterances from ../shared/eval (2–9 s each), four per
session, one speaker per session, played by ``voxa talk``'s client over ``WS /v1/agent`` at
real-time pace (20 ms messages, silence between turns as a microphone sends it). Each turn
waits until the bot has answered and gone quiet.

Rows (same server process, same transport, same LLM, same voice, same latency probe):
* **voxa**: the default agent: voxa's streaming recogniser (tiny.en, interim results, finalized
  when Silero reports the pause), end of turn in three tiers (smart-turn v3.2 at a 0.2 s pause; a final text that ends a
  sentence at 0.6 s; 2 s), barge-in
  after 0.5 s of speech.
* **pipecat-stock**: Pipecat 1.14's own pieces with its defaults: ``WhisperSTTService``
  (segmented faster-whisper: transcribes after the VAD cut) on the same tiny.en weights, the
  default user-turn strategies (VAD/transcript start, smart-turn v3 stop), barge-in at VAD start.
Both: the bundled SmolLM2-135M on voxa's default runtime (CTranslate2 int8; llama.cpp when
llama-cpp-python is installed: the report's machine line says which), one thread, temperature
0, at most 60 tokens per answer (the answer's length does not change the latency figures),
hibari's voice through ``VoxaTTSService`` (watermarked).

Per turn, from the end of the user's speech (Silero's stop minus its 0.2 s window): turn decided,
ASR final, LLM first token, TTS first audio, voice-to-voice (the first bot audio the server
sends). Barge-in: sessions of two turns where the second recording starts 1 s into the bot's
answer; "stop" runs to the last bot audio the client receives, from the onset of that speech:
where its loudness first rises (``voxa talk``'s onset), and where Silero first hears speech
(first 32 ms window at p >= 0.5, the same model the agents use). On test-other recordings the
loudness rises 0–0.4 s before the speech does (breath, noise), so the rule's own speech is
subtracted from the second.

    python benchmarks/agent_latency.py [--sessions 6] [--barge 5] [--rows voxa,pipecat-stock]

Targets (voxa): voice-to-voice p50 <= 700 ms, p90 <= 1,000 ms; barge-in stop <= 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path

import numpy as np
from fastapi import WebSocket  # module level: the /stock route's annotation must resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command, machine_facts, write_report  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
RULE_MS = {"voxa": 500.0, "pipecat-stock": 200.0}  # speech needed before an interruption: interrupt_speech_s; VAD start
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


def run_row(base: str, row: str, groups, barge: int) -> dict:
    from voxa.agent.talk import talk

    url = base + ("/v1/agent" if row == "voxa" else "/stock")
    turns, heard, stops, vad_stops, missed = [], 0, [], [], 0
    for n, files in enumerate(groups, 1):
        s = asyncio.run(talk(url, [str(f) for f in files]))
        for t in s.turns:
            heard += bool(t.transcript)
            if t.latency:
                turns.append(t.latency)
            else:
                missed += 1
        print(f"[{row}] session {n}/{len(groups)}: {len(s.turns)} turns, "
              f"v2v {[t.latency and t.latency['voice_to_voice_ms'] for t in s.turns]}", file=sys.stderr, flush=True)
    for files in groups[:barge]:
        s = asyncio.run(talk(url, [str(f) for f in files[:2]], barge_in=1.0))
        if s.turns and s.turns[0].barge_in_stop_ms is not None:
            stops.append(s.turns[0].barge_in_stop_ms)
            vad_stops.append(s.turns[0].barge_in_stop_ms - 1000.0 * onset_shift(files[1]))
        print(f"[{row}] barge-in: {s.turns[0].barge_in_stop_ms if s.turns else None}", file=sys.stderr, flush=True)
    out = {"row": row, "turns": len(turns), "unanswered": missed, "barge_ins": len(stops), "barge_tried": barge}
    for stage in STAGES:
        vals = [t[stage] for t in turns if t.get(stage) is not None]
        out[stage] = (pct(vals, 50), pct(vals, 90))
    out["barge_stop"] = (pct(stops, 50), pct(stops, 90))
    out["barge_stop_vad"] = (pct(vad_stops, 50), pct(vad_stops, 90))
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
              "ended first is not counted).", "",
              "Machine:", *machine_facts(("pipecat-ai", "faster-whisper", "ctranslate2", "llama-cpp-python",
                                           "onnxruntime", "hibari-tts"))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=6, help="sessions of 4 turns per row")
    ap.add_argument("--barge", type=int, default=5, help="barge-in sessions per row")
    ap.add_argument("--rows", default="voxa,pipecat-stock")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_latency.md"))
    args = ap.parse_args(argv)
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

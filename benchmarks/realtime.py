"""OpenAI Realtime transcription sessions: how soon the first words and the whole transcript
arrive, through the official ``openai`` SDK, on real speech.

20 LibriSpeech test-other utterances (3-7 s) from ../shared/eval, each with 0.5 s of silence
before and 1 s after, streamed at real-time pace in 100 ms ``input_audio_buffer.append`` events
(24 kHz PCM) into one ``WS /v1/realtime?intent=transcription`` session with ``server_vad``
(500 ms of silence ends an item). Speech onset and end: where Silero (threshold 0.5) first and
last hears speech in the recording. First delta: the first
``conversation.item.input_audio_transcription.delta`` of the item, from the onset; completed:
``...completed`` from the end of the speech (it includes the 500 ms pause that ends the item).

    python benchmarks/realtime.py [--utterances 20] [--out benchmarks/results/realtime.md]

Target (issue 22): first delta <= 500 ms after the speech onset.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine_facts, write_report  # noqa: E402
from wyoming_latency import commands  # noqa: E402  (the same 3-7 s utterances)


def speech_span(samples: np.ndarray) -> tuple[float, float]:
    from voxa.vad import VadConfig, speech_regions

    r = speech_regions(samples, VadConfig(threshold=0.5, speech_pad_ms=0, min_silence_ms=100))
    return (r[0][0] / 16000, r[-1][1] / 16000) if r else (0.0, samples.size / 16000)


async def session(url: str, clips: list[np.ndarray]) -> list[dict]:
    from openai import AsyncOpenAI

    from voxa import audio

    client = AsyncOpenAI(base_url=url + "/v1", api_key="none")
    rows = []
    async with client.realtime.connect(model="gpt-realtime", extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
        while (await conn.recv()).type != "session.updated":
            pass
        base_ms = 0.0  # the session's audio clock at the start of this clip
        for x in clips:
            onset, end = speech_span(x)
            z = np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)])
            pcm = audio.to_pcm16(audio.resample(z, 16000, 24000))
            step = 4800  # 100 ms of 24 kHz 16-bit
            t0 = time.perf_counter()
            row = {"onset": t0 + 0.5 + onset, "end": t0 + 0.5 + end}

            async def send():
                for k, i in enumerate(range(0, len(pcm), step)):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + step]).decode())
                    await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.perf_counter()))

            sender = asyncio.create_task(send())
            texts, deltas, streamed, timed = [], {}, {}, {}
            async for ev in conn:
                now = time.perf_counter()
                if ev.type.endswith("transcription.delta"):
                    row.setdefault("delta", now)
                    deltas[ev.item_id] = deltas.get(ev.item_id, "") + ev.delta
                    timed.setdefault(ev.item_id, []).append((now, ev.delta))
                elif ev.type == "input_audio_buffer.speech_started":
                    row.setdefault("started", now)
                elif ev.type == "input_audio_buffer.speech_stopped":  # what came while the person spoke
                    stop = t0 + (ev.audio_end_ms - base_ms) / 1000  # the session's audio clock, on ours
                    streamed[ev.item_id] = "".join(d for t, d in timed.get(ev.item_id, []) if t <= stop)
                elif ev.type.endswith("transcription.completed"):
                    row.setdefault("prefix", []).append(ev.transcript.startswith(deltas.get(ev.item_id, "")))
                    row.setdefault("items", []).append((streamed.get(ev.item_id, ""), ev.transcript))
                    texts.append(ev.transcript)
                    row["completed"] = now
                    if now >= row["end"]:
                        break
            await sender
            base_ms += len(pcm) / 48
            row["text"] = " ".join(texts)
            rows.append(row)
            print(f"first delta {1000 * (row.get('delta', np.nan) - row['onset']):6.0f} ms, completed "
                  f"{1000 * (row['completed'] - row['end']):6.0f} ms  {row['text'][:60]}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/realtime.md"))
    args = ap.parse_args(argv)

    from voxa import audio
    from voxa.evaluate import normalize, wer
    from voxa.server import create_app, serve_in_background
    from voxa.server.config import ServerConfig

    todo = commands(args.utterances)
    clips = [audio.decode(f) for f, _ in todo]
    url = serve_in_background(create_app(ServerConfig(api_keys=())))
    asyncio.run(session(url, clips[:1]))  # warm-up: models load
    rows = asyncio.run(session(url, clips))
    first = [1000 * (r["delta"] - r["onset"]) for r in rows if "delta" in r]
    started = [1000 * (r["started"] - r["onset"]) for r in rows if "started" in r]
    prefix = [ok for r in rows for ok in r.get("prefix", [])]
    items = [it for r in rows for it in r.get("items", [])]
    said, done = [normalize(d).split() for d, _ in items], [normalize(t).split() for _, t in items]
    coverage = 100 * sum(map(len, said)) / max(1, sum(map(len, done)))
    streamed = [(" ".join(t[:len(d)]), " ".join(d)) for d, t in zip(said, done) if d]
    delta_wer = 100 * wer([t for t, _ in streamed], [d for _, d in streamed])
    done = [1000 * (r["completed"] - r["end"]) for r in rows]
    w = 100 * wer([ref for _, ref in todo], [r["text"] for r in rows])
    p = lambda v, q: float(np.percentile(v, q))  # noqa: E731
    lines = [
        "# OpenAI Realtime transcription sessions", "",
        f"{datetime.date.today().isoformat()}; `{command('benchmarks/realtime.py', argv)}`", "",
        *machine_facts(("openai", "faster-whisper", "ctranslate2")), "",
        f"{len(rows)} LibriSpeech test-other utterances, real-time pace, one session, server_vad (500 ms), "
        "the server's live model (whisper-tiny.en), the official `openai` client.", "",
        "| measure | p50 | p90 | max |", "|---|---|---|---|",
        f"| speech_started after the speech onset | {p(started, 50):.0f} ms | {p(started, 90):.0f} ms | "
        f"{max(started):.0f} ms |",
        f"| first delta after the speech onset | {p(first, 50):.0f} ms | {p(first, 90):.0f} ms | {max(first):.0f} ms |",
        f"| completed after the end of the speech (incl. the 500 ms pause) | {p(done, 50):.0f} ms | "
        f"{p(done, 90):.0f} ms | {max(done):.0f} ms |", "",
        f"Utterances with a delta: {len(first)} of {len(rows)}. Items whose deltas join into the start of their "
        f"completed transcript: {sum(prefix)} of {len(prefix)}. WER of the completed transcripts: {w:.1f}%.", "",
        f"Streamed while the person spoke (deltas before `speech_stopped`): {coverage:.0f}% of the completed "
        f"transcripts' words; those deltas' WER against the same number of the completed transcript's first "
        f"words: {delta_wer:.1f}%. The completed transcript is the authority: a delta never takes text back.", ""]
    return write_report(args.out, "\n".join(lines), [])


if __name__ == "__main__":
    sys.exit(main())

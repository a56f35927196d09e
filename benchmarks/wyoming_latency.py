"""Wyoming speech-to-text latency: voxa's Wyoming service beside a wyoming-faster-whisper-style
server, in one run, as Home Assistant uses them.

Commands: 20 LibriSpeech test-other utterances from ../shared/eval, 3-7 s (about a 5 s voice
command), either cut 0.1 s after the speech ends (the hardest case: nothing can be decoded ahead)
or followed by 0.5 s more silence (a satellite stops the stream once its own VAD has heard the
pause), streamed at real-time pace in 1024-sample chunks (what a Home Assistant
satellite sends), one command at a time, through the ``wyoming`` package's own client.
Latency: from sending ``audio-stop`` to receiving ``transcript``.

Rows (one process, one machine; the same tiny.en weights for both):
* **voxa**: ``voxa.server.wyoming``: the live recogniser decodes while the audio arrives, so
  at ``audio-stop`` only what was said after the last endpoint is left. Its Wyoming default
  decodes finals at beam 5 (``Settings.final_beam``); **voxa, greedy** is the live recogniser's
  own default (beam 1 at 400 ms endpointing).
* **faster-whisper (wyoming-faster-whisper)**: the handler wyoming-faster-whisper runs: buffer
  the audio, and at ``audio-stop`` transcribe it with faster-whisper (its defaults on x86: beam
  5, no VAD filter; language en as Home Assistant sends it; ``cpu_threads`` 2, the cores here,
  not its default 4, which would oversubscribe this machine).

    python benchmarks/wyoming_latency.py [--commands 20] [--out benchmarks/results/wyoming.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command, machine_facts, write_report  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
LS = EVAL / "librispeech-test-other-Resemblyzer"
CHUNK = 1024


def commands(n: int) -> list[tuple[Path, str]]:
    """``n`` utterances of 3-7 s, spread over the speakers, with their references."""
    import soundfile as sf

    refs = dict(line.split(" ", 1) for line in (LS / "test-other.subset.trans.txt").read_text().splitlines() if line)
    picked = [f for f in sorted(LS.glob("*.flac")) if 3.0 <= sf.info(str(f)).duration <= 7.0]
    step = max(1, len(picked) // n)
    return [(f, refs[f.stem]) for f in picked[::step][:n]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_handler(model_dir: str):
    """wyoming-faster-whisper's handler, reduced to what a transcription needs."""
    import faster_whisper
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.server import AsyncEventHandler

    model = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="default", cpu_threads=2)
    lock = asyncio.Lock()

    class Handler(AsyncEventHandler):
        def __init__(self, *args):
            super().__init__(*args)
            self.pcm, self.language = [], None

        async def handle_event(self, event):
            if Transcribe.is_type(event.type):
                self.language = Transcribe.from_event(event).language
            elif AudioChunk.is_type(event.type):
                self.pcm.append(AudioChunk.from_event(event).audio)
            elif AudioStop.is_type(event.type):
                samples = np.frombuffer(b"".join(self.pcm), "<i2").astype(np.float32) / 32768.0
                async with lock:
                    text = await asyncio.to_thread(self._transcribe, samples)
                await self.write_event(Transcript(text=text).event())
                self.pcm = []
                return False
            return True

        def _transcribe(self, samples):
            segments, _ = model.transcribe(samples, beam_size=5, language=self.language, vad_filter=False)
            return " ".join(s.text for s in segments).strip()

    return Handler


def start_servers() -> dict[str, int]:
    """Both services on free loopback ports, on one event loop thread; returns their ports."""
    from wyoming.server import AsyncTcpServer

    from voxa.asr import load_model
    from voxa.registry import resolve
    from voxa.server import wyoming as wy

    load_model("whisper-tiny.en")  # loaded before timing starts, for both rows
    configs = {"voxa": {}, "voxa, greedy": {"final_beam": 1}}
    ports = {name: free_port() for name in [*configs, "faster-whisper"]}
    handler = baseline_handler(str(resolve("whisper-tiny.en")[1]))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main():
        for name, kw in configs.items():
            await wy.start(wy.Settings(stream_model="whisper-tiny.en", **kw), "127.0.0.1", ports[name])
        base = AsyncTcpServer("127.0.0.1", ports["faster-whisper"])
        await base.start(lambda r, w: handler(r, w))
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True).start()
    if not ready.wait(60):
        raise RuntimeError("the Wyoming services did not start")
    return ports


def trimmed(samples: np.ndarray) -> np.ndarray:
    """The recording cut 0.1 s after the end of its speech (Silero VAD, threshold 0.5, no
    padding): the stream stops as the speech does, the hardest case for decoding ahead."""
    from voxa.vad import VadConfig, speech_regions

    regions = speech_regions(samples, VadConfig(threshold=0.5, speech_pad_ms=0, min_silence_ms=100))
    return samples[:min(samples.size, regions[-1][1] + 1600)] if regions else samples


async def one(port: int, samples: np.ndarray, tail: float) -> tuple[str, float]:
    """Stream one command at real-time pace; (transcript, seconds from audio-stop to transcript)."""
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    from voxa.audio import to_pcm16

    pcm = to_pcm16(np.concatenate([samples, np.zeros(int(tail * 16000), np.float32)]))
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), 2 * CHUNK)):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 2 * CHUNK]).event())
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK / 16000 - time.perf_counter()))
        stop = time.perf_counter()
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text, time.perf_counter() - stop
    raise RuntimeError("no transcript")


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=int, default=20)
    ap.add_argument("--tails", default="trim,0.5",
                    help="seconds of silence added after each command, or trim (cut 0.1 s after the speech); "
                         "one set of rows per value")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/wyoming.md"))
    args = ap.parse_args(argv)

    from voxa import audio
    from voxa.evaluate import wer

    todo = commands(args.commands)
    ports = start_servers()
    clips = [(audio.decode(f), ref) for f, ref in todo]
    rows = []
    for tail in args.tails.split(","):
        cut = tail == "trim"
        for name, port in ports.items():
            asyncio.run(one(port, clips[0][0], 0.0))  # warm-up, not counted
            texts, lat = [], []
            for samples, _ in clips:
                text, seconds = asyncio.run(one(port, trimmed(samples) if cut else samples, 0.0 if cut else float(tail)))
                texts.append(text)
                lat.append(seconds)
                print(f"[{name}, {tail} s] {seconds * 1000:6.0f} ms  {text[:70]}", file=sys.stderr, flush=True)
            rows.append({"row": name, "tail": tail, "p50": pct(lat, 50), "p90": pct(lat, 90), "max": pct(lat, 100),
                         "wer": 100 * wer([r for _, r in clips], texts)})
    secs = [s.size / 16000 for s, _ in clips]
    lines = [
        "# Wyoming speech to text: latency after audio-stop", "",
        f"{datetime.date.today().isoformat()}; `{command('benchmarks/wyoming_latency.py', argv)}`", "",
        *machine_facts(("wyoming", "faster-whisper", "ctranslate2")), "",
        f"{len(clips)} LibriSpeech test-other commands ({min(secs):.1f}-{max(secs):.1f} s, {sum(secs):.0f} s in all), "
        f"each followed by the silence in the tail column, streamed at real-time pace in {CHUNK}-sample chunks by the "
        "`wyoming` client, one at a time; whisper-tiny.en (int8) for every row.", "",
        "| row | silence after the command | p50 | p90 | max | WER |", "|---|---|---|---|---|---|",
        *[f"| {r['row']} | {'cut 0.1 s after the speech' if r['tail'] == 'trim' else r['tail'] + ' s added'} | {r['p50']:.0f} ms | {r['p90']:.0f} ms | {r['max']:.0f} ms | {r['wer']:.1f}% |"
          for r in rows],
        "", "Latency: `audio-stop` sent to `transcript` received. faster-whisper row: wyoming-faster-whisper's "
        "handler (buffer, then transcribe at audio-stop; beam 5, no VAD filter, cpu_threads 2).", ""]
    return write_report(args.out, "\n".join(lines), rows)


if __name__ == "__main__":
    sys.exit(main())

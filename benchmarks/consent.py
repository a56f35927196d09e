"""Speaker verification for the consent gate: how well does a voiceprint tell the consenting
speaker from anyone else? Every pair of the shared LibriSpeech utterances (test-other's six
speakers and test-clean's one) is scored with ``voxa.diarization.voiceprint`` (Resemblyzer,
speech-weighted mean of 1.6 s windows) by cosine similarity. Reports the equal error rate and
the false-accept / false-reject rates at voxa's threshold (``consent.MATCH_THRESHOLD``) and
around it. For a consent gate a false accept (someone else's voice passing) is the costly error.

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
    diarization.embedder()
    t0, seconds, prints, who = time.perf_counter(), 0.0, [], []
    for f in files:
        pcm = audio.decode(f)
        seconds += pcm.size / 16000
        prints.append(diarization.voiceprint(pcm)[0])
        who.append(f.stem.split("-")[0])
    rtf = (time.perf_counter() - t0) / seconds
    sims = np.stack(prints) @ np.stack(prints).T
    same, diff = [], []
    for i, j in itertools.combinations(range(len(files)), 2):
        (same if who[i] == who[j] else diff).append(sims[i, j])
    same, diff = np.array(same), np.array(diff)
    grid = np.linspace(0.5, 1.0, 501)
    far = np.array([(diff >= t).mean() for t in grid])
    frr = np.array([(same < t).mean() for t in grid])
    k = int(np.argmin(np.abs(far - frr)))
    eer, at = (far[k] + frr[k]) / 2, grid[k]

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Consent gate: speaker verification", "", f"Date: {date}",
             f"Command: `{common.command('benchmarks/consent.py', argv)}`", "",
             *common.machine_facts(("resemblyzer", "torch")), "",
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
              "not a guarantee for other microphones or rooms."]
    rows = [{"eer": float(eer), "eer_threshold": float(at), "threshold": MATCH_THRESHOLD,
             "far": float((diff >= MATCH_THRESHOLD).mean()), "frr": float((same < MATCH_THRESHOLD).mean())}]
    return common.write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    sys.exit(main())

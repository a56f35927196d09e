"""Speaker diarization benchmark on the ten shared AMI clips (pyannote's debug train set, 30 s
each, 1-4 speakers, overlap), with their RTTM and UEM, in one run:

* **voxa**: ``voxa.diarize`` with its defaults (segmentation-3.0 + CAM++, speaker count found);
  with the reference speaker count; and with its clustering threshold picked leave-one-out
  (the honest row: the defaults were calibrated on these same clips);
* **voxa v1**: the first pipeline (Silero VAD + Resemblyzer + average linkage), the same ways;
* **one speaker**: voxa's voice activity, all of it given to one speaker (the floor any
  clustering must beat);
* **v1 with spectral clustering** (Google's ``spectralcluster``, its ICASSP 2018 configuration,
  speaker count by eigengap) in place of average linkage, when that package is installed;
* **reference, one speaker at a time**: the reference itself with overlapped speech given to one
  speaker only: the best any system without overlap detection can do on these clips;
* **ceilings**: v1 given the reference's speech regions (a perfect voice-activity detector),
  its overlapped stretches (a perfect overlap detector), or both, through
  ``diarize_array(speech=..., overlapped=...)``.

DER from pyannote.metrics with overlapped speech scored, at collar 0 and 0.25 s; JER; mean
absolute speaker-count error; RTF (wall time / audio, models loaded before timing).

    python benchmarks/diarization.py [--loo] [--long 7200] [--out benchmarks/results/diarization.md]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

ROOT = HERE.parent
CLUSTER = None  # voxa's own cluster(), kept while the spectral row swaps it out
EVAL = Path(os.environ.get("VOXA_EVAL_DIR", ROOT.parent / "shared" / "eval"))
AMI = EVAL / "pyannote-audio" / "ami-debug"


def references():
    from pyannote.core import Annotation, Segment, Timeline

    refs, uems = {}, {}
    for n, line in enumerate((AMI / "debug.train.rttm").read_text().splitlines()):
        f = line.split()
        refs.setdefault(f[1], Annotation(uri=f[1]))[Segment(float(f[3]), float(f[3]) + float(f[4])), n] = f[7]
    for line in (AMI / "debug.train.uem").read_text().splitlines():
        f = line.split()
        uems[f[0]] = Timeline([Segment(float(f[2]), float(f[3]))], uri=f[0])
    return refs, uems


def score(name, hyps, refs, uems, seconds):
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    der0 = DiarizationErrorRate(collar=0.0, skip_overlap=False)  # its components are reported too
    der25 = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    jer = JaccardErrorRate(collar=0.0, skip_overlap=False)
    count = []
    for uri, hyp in hyps.items():
        for m in (der0, der25, jer):
            m(refs[uri], hyp, uem=uems[uri])
        count.append(abs(len(hyp.labels()) - len(refs[uri].labels())))
    audio_s = 30.0 * len(hyps)
    part = {}
    for _, detail in der0.results_:
        for k, v in detail.items():
            part[k] = part.get(k, 0.0) + v
    return {"name": name, "der0": abs(der0), "der25": abs(der25), "jer": abs(jer),
            "miss": part["missed detection"] / part["total"], "fa": part["false alarm"] / part["total"],
            "confusion": part["confusion"] / part["total"],
            "count": float(np.mean(count)), "rtf": seconds / audio_s if seconds else None}


def one_at_a_time(ref, step=0.01):
    """The reference with overlapped speech given only to the speaker who started first."""
    from pyannote.core import Annotation, Segment

    turns = sorted((seg.start, seg.end, spk) for seg, _, spk in ref.itertracks(yield_label=True))
    end = max((e for _, e, _ in turns), default=0.0)
    owner = [None] * (int(end / step) + 1)
    for a, b, spk in turns:
        for i in range(int(a / step), int(b / step)):
            owner[i] = owner[i] or spk
    out, start = Annotation(uri=ref.uri), 0
    for i in range(1, len(owner) + 1):
        if i == len(owner) or owner[i] != owner[start]:
            if owner[start]:
                out[Segment(start * step, i * step), start] = owner[start]
            start = i
    return out


def spectral(emb, spans, opts, *, num, lo, hi):
    """voxa's cluster() signature over spectralcluster's ICASSP 2018 clusterer."""
    from spectralcluster import configs

    if len(emb) < 8:
        return CLUSTER(emb, spans, opts, num=num, lo=lo, hi=hi)
    c = configs.icassp2018_clusterer
    c.min_clusters, c.max_clusters = 1, 8
    return np.unique(c.predict(emb.astype(np.float64)), return_inverse=True)[1]


def leave_one_out(name, grid, make, pcms, refs, uems):
    """Each clip diarized with the threshold that scores best on the other nine."""
    from voxa import diarization as dz

    uris = sorted(refs)
    per = {th: {u: dz.diarize_array(pcms[u], u, opts=make(th)).to_annotation(u) for u in uris} for th in grid}
    hyps, picked = {}, []
    for u in uris:
        others = [x for x in uris if x != u]
        best = min(grid, key=lambda th: score("", {x: per[th][x] for x in others}, refs, uems, 0)["der0"])
        picked.append(best)
        hyps[u] = per[best][u]
    return score(f"{name}, leave-one-out threshold (picked {sorted(set(picked))})", hyps, refs, uems, 0)


def reference_activity(ref, frames: int) -> np.ndarray:
    """The reference's speakers on voxa's segmentation frames [frames, speakers] (0/1), judged
    at each frame's centre."""
    from voxa import diarization as dz
    from voxa.speakers import FRAME_STEP

    t = dz.frame_time(np.arange(frames)) + FRAME_STEP / 2 / 16000
    labels = sorted(ref.labels())
    act = np.zeros((frames, max(len(labels), 1)), dtype=np.int8)
    for seg, _, spk in ref.itertracks(yield_label=True):
        act[(t >= seg.start) & (t < seg.end), labels.index(spk)] = 1
    return act


def v2_ceilings(pcms, refs, uems) -> tuple[list[dict], float]:
    """voxa's pipeline given the reference at one stage at a time: its local speakers mapped to
    the reference's speakers (perfect clustering), the reference's speech / no-speech (a perfect
    voice-activity detector: the model's count, at least one where someone speaks, none
    elsewhere), the reference's number of speakers per frame (a perfect speaker counter). Also
    the share of overlapped frames that the model's own count puts at one speaker or none."""
    from scipy.optimize import linear_sum_assignment

    from voxa import diarization as dz
    from voxa.speakers import FRAME_STEP, N_FRAMES
    from voxa.types import Diarization

    opts = dz.DiarizeOptions()
    hyps = {"clusters": {}, "speech": {}, "count": {}}
    overlapped = under = 0
    for u in sorted(refs):
        pcm = pcms[u]
        starts = dz.chunk_starts(pcm.size, opts.step_s)
        logp = dz.segment(pcm, starts, opts.batch)
        plain = dz.binarize(logp)
        local = dz.binarize(logp, opts.none_bias, opts.pair_bias)
        emb, dur, clean = dz.embed(pcm, starts, plain, opts)
        cents = dz.cluster(emb, dur, clean, opts)
        hard = dz.assign(emb, starts, plain, cents)
        count = dz.speaker_count(local, starts)
        truth = reference_activity(refs[u], len(count))
        overlapped += int((truth.sum(1) >= 2).sum())
        under += int(((truth.sum(1) >= 2) & (count <= 1)).sum())
        perfect = np.full((len(starts), 3), -2)  # each local speaker -> the reference speaker it overlaps most
        for c, s0 in enumerate(starts):
            o = s0 // FRAME_STEP
            r, k = linear_sum_assignment(-(plain[c].T @ truth[o:o + N_FRAMES]))
            for s, spk in zip(r, k):
                if plain[c][:, s].any():
                    perfect[c, s] = spk
        duration = pcm.size / 16000
        ref_count = truth.sum(1)
        for key, on in (("clusters", dz.reconstruct(logp, local, perfect, starts, truth.shape[1])),
                        ("speech", dz.reconstruct(logp, local, hard, starts, len(cents),
                                                  count=np.where(ref_count > 0, np.maximum(count, 1), 0))),
                        ("count", dz.reconstruct(logp, local, hard, starts, len(cents), count=ref_count))):
            hyps[key][u] = Diarization(u, duration, *dz.turns_of(on, duration), []).to_annotation(u)
    rows = [score(name, hyps[key], refs, uems, 0) for key, name in (
        ("clusters", "ceiling: voxa with perfect clustering (its local speakers mapped to the reference's)"),
        ("speech", "ceiling: voxa with the reference's speech / no speech"),
        ("count", "ceiling: voxa with the reference's speaker count per frame"))]
    return rows, under / max(overlapped, 1)


def conversation(eval_dir: Path, speakers=("1688", "1998"), turns: int = 8, gap_s: float = 1.0):
    """A two-speaker conversation from shared LibriSpeech recordings: the speakers' utterances in
    turn, ``gap_s`` of silence between. Returns (16 kHz samples, [(start, end, speaker)])."""
    from voxa import audio

    folder = eval_dir / "librispeech-test-other-Resemblyzer"
    files = {spk: sorted(folder.glob(f"{spk}-*.flac")) for spk in speakers}
    parts, truth, t = [], [], 0.0
    gap = np.zeros(int(gap_s * 16000), np.float32)
    for i in range(turns):
        spk = speakers[i % len(speakers)]
        x = audio.decode(files[spk][i // len(speakers)])
        parts += [x, gap]
        truth.append((t, t + x.size / 16000, spk))
        t += (x.size + gap.size) / 16000
    return np.concatenate(parts), truth


def attributed_accuracy(words, truth) -> float:
    """Share of words whose speaker label names the right person, labels mapped one-to-one onto
    people (Hungarian on the counts); an unlabelled word is wrong."""
    from scipy.optimize import linear_sum_assignment

    ref = [next((spk for a, b, spk in truth if a <= (w.start + w.end) / 2 <= b + 0.3), None) for w in words]
    hyps = sorted({w.speaker for w in words if w.speaker})
    people = sorted({spk for _, _, spk in truth})
    counts = np.zeros((max(len(hyps), 1), len(people)))
    for w, r in zip(words, ref):
        if w.speaker and r:
            counts[hyps.index(w.speaker), people.index(r)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / max(len(words), 1))


def live_words(pcm) -> list:
    """The words of the finals of voxa.listen(..., diarize=True) (tiny.en, as fast as it reads)."""
    import voxa

    return [w for e in voxa.listen(pcm, "tiny.en", interim_results=False, diarize=True)
            if getattr(e, "is_final", False) for w in e.words]


def live_rows(eval_dir: Path, refs) -> list[dict]:
    """Speaker-attributed word accuracy of live recognition: the two-reader conversation, and
    the AMI clips streamed one by one (word-weighted over the clips with words)."""
    from voxa import audio

    pcm, truth = conversation(eval_dir)
    t0 = time.perf_counter()
    words = live_words(pcm)
    rows = [{"name": "two LibriSpeech readers taking turns (8 turns, 79 s)", "accuracy": attributed_accuracy(words, truth),
             "words": len(words), "speakers": len({w.speaker for w in words if w.speaker}), "people": 2,
             "rtf": (time.perf_counter() - t0) / (pcm.size / 16000)}]
    right = total = found = people = 0
    for u in sorted(refs):
        truth = [(seg.start, seg.end, spk) for seg, _, spk in refs[u].itertracks(yield_label=True)]
        words = live_words(audio.decode(AMI / f"{u}.wav"))
        right += attributed_accuracy(words, truth) * len(words)
        total += len(words)
        found += len({w.speaker for w in words if w.speaker})
        people += len(refs[u].labels())
    rows.append({"name": "the ten AMI clips, each a stream", "accuracy": right / max(total, 1), "words": total,
                 "speakers": found, "people": people, "rtf": None})
    return rows


LONG = """
import json, sys, time
import numpy as np

def status(key):  # this process's own figures (ru_maxrss would carry the parent's peak over fork)
    return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1]) / 1024

sys.path.insert(0, {here!r})
import diarization as B
from voxa import audio, diarization as dz
refs, _ = B.references()
clips = [audio.decode(B.AMI / f"{{u}}.wav") for u in sorted(refs)]
pcm = np.concatenate(clips * int(np.ceil({seconds} / sum(c.size / 16000 for c in clips))))[:int({seconds} * 16000)]
before = status("VmRSS")
dz.ready()
t0 = time.perf_counter()
d = dz.diarize_array(pcm, "long")
wall = time.perf_counter() - t0
print(json.dumps({{"audio": pcm.size / 16000, "wall": wall, "speakers": len(d.speakers), "turns": len(d.turns),
                  "before_mb": before, "peak_mb": status("VmHWM")}}))
"""


def long_row(seconds: float) -> dict:
    """voxa.diarize on the ten AMI clips tiled to ``seconds``, in a fresh process: wall time and
    peak memory (VmHWM), and the memory in use just before the call (the decoded samples and the
    libraries)."""
    import json
    import subprocess

    code = LONG.format(here=str(HERE), seconds=seconds)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loo", action="store_true", help="add a leave-one-out calibration row")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/diarization.md"))
    ap.add_argument("--long", type=float, default=0.0, metavar="SECONDS",
                    help="also diarize the clips tiled to this length (7200: two hours, about 6 minutes)")
    args = ap.parse_args(argv)
    from pyannote.core import Annotation, Segment

    import voxa
    from voxa import audio
    from voxa import diarization as dz
    from voxa import diarization_v1 as v1
    from voxa.diarization_v1 import V1Options
    from voxa.vad import speech_regions

    refs, uems = references()
    uris = sorted(refs)
    pcms = {u: audio.decode(AMI / f"{u}.wav") for u in uris}
    dz.ready()
    dz.embedder()
    voxa.diarize(pcms[uris[0]][:16000 * 5])  # warm up
    voxa.diarize(pcms[uris[0]][:16000 * 5], method="v1")
    rows = []
    for name, method, hint in (("voxa (speaker count found)", "v2", lambda u: {}),
                               ("voxa (oracle speaker count)", "v2", lambda u: {"num": len(refs[u].labels())}),
                               ("voxa v1 (speaker count found)", "v1", lambda u: {}),
                               ("voxa v1 (oracle speaker count)", "v1", lambda u: {"num": len(refs[u].labels())})):
        hyps, t0 = {}, time.perf_counter()
        for u in uris:
            hyps[u] = dz.diarize_array(pcms[u], u, method=method, **hint(u)).to_annotation(u)
        rows.append(score(name, hyps, refs, uems, time.perf_counter() - t0))
    if args.loo:
        rows.append(leave_one_out("voxa", (0.45, 0.5, 0.55, 0.6, 0.65), lambda th: dz.DiarizeOptions(threshold=th),
                                  pcms, refs, uems))
        rows.append(leave_one_out("voxa v1", (0.25, 0.3, 0.35, 0.4, 0.45, 0.5), lambda th: V1Options(threshold=th),
                                  pcms, refs, uems))
    hyps = {}
    for u in uris:
        ann = Annotation(uri=u)
        for n, (a, b) in enumerate(speech_regions(pcms[u], dz._VAD)):
            ann[Segment(a / 16000, b / 16000), n] = "ONE"
        hyps[u] = ann
    rows.append(score("one speaker for all speech (voxa's VAD)", hyps, refs, uems, 0))
    if importlib.util.find_spec("spectralcluster") is None:
        print("spectralcluster is not installed: no spectral row", file=sys.stderr)
    else:
        global CLUSTER
        CLUSTER, v1.cluster = v1.cluster, spectral
        try:
            hyps, t0 = {}, time.perf_counter()
            for u in uris:
                hyps[u] = dz.diarize_array(pcms[u], u, method="v1").to_annotation(u)
            rows.append(score("v1 with spectral clustering (spectralcluster, eigengap count)", hyps, refs, uems,
                              time.perf_counter() - t0))
        finally:
            v1.cluster = CLUSTER
    rows.append(score("reference, one speaker at a time (no overlap detection)",
                      {u: one_at_a_time(refs[u]) for u in uris}, refs, uems, 0))
    speech = {u: [(s.start, s.end) for s in refs[u].get_timeline().support()] for u in uris}
    overlapped = {u: [(s.start, s.end) for s in refs[u].get_overlap()] for u in uris}
    for name, given, window in (("ceiling: v1 with the reference's speech regions", ("speech",), 1.5),
                                ("ceiling: v1 with the reference's overlapped speech", ("overlapped",), 1.5),
                                ("ceiling: v1 with both", ("speech", "overlapped"), 1.5)):
        hyps = {}
        for u in uris:
            kw = {k: v[u] for k, v in (("speech", speech), ("overlapped", overlapped)) if k in given}
            hyps[u] = dz.diarize_array(pcms[u], u, opts=V1Options(window_s=window), **kw).to_annotation(u)
        rows.append(score(name, hyps, refs, uems, 0))

    ceilings, missed_overlap = v2_ceilings(pcms, refs, uems)
    rows += ceilings
    live = live_rows(EVAL, refs)
    long = long_row(args.long) if args.long else None
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Speaker diarization benchmark", "", f"Date: {date}",
        f"Command: `{common.command('benchmarks/diarization.py', argv)}`", "",
        *common.machine_facts(("onnxruntime", "torch", "kaldi-native-fbank", "resemblyzer", "pyannote.metrics", "scipy")), "",
        "Data: the ten AMI excerpts of pyannote-audio's debug train set (30 s each, 1-4 speakers, "
        "spontaneous speech with overlap) with their RTTM and UEM. DER with overlapped speech scored. "
        "voxa's thresholds were calibrated on these clips (the only references here): the "
        "leave-one-out rows are the honest ones.", "",
        "| system | DER (collar 0) | missed | false alarm | confusion | DER (collar 0.25 s) | JER "
        "| speaker-count error | RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rtf = f"{r['rtf']:.3f}" if r["rtf"] else "n/a"
        lines.append(f"| {r['name']} | {100 * r['der0']:.1f}% | {100 * r['miss']:.1f}% | {100 * r['fa']:.1f}% "
                     f"| {100 * r['confusion']:.1f}% | {100 * r['der25']:.1f}% | {100 * r['jer']:.1f}% "
                     f"| {r['count']:.1f} | {rtf} |")
    lines += ["", "Missed, false alarm and confusion are shares of the scored speech at collar 0 (they add "
              "up to the DER). Overlapped speech counts once per speaker, so a system that never puts two "
              "speakers at one instant misses the second speaker of every overlap: the \"reference, one speaker at a time\" row.", "",
              "The ceilings give v1 the reference's own speech regions and overlapped stretches: what a "
              "perfect voice-activity or overlap detector would be worth with Resemblyzer's embeddings. "
              "The voxa ceilings give the current pipeline the truth at one stage at a time: perfect "
              "clustering is worth little; the speaker count per frame, which comes from the "
              "segmentation model alone, is where the error is. In "
              f"{100 * missed_overlap:.0f}% of the frames where two or more people speak, the "
              "segmentation chunks covering the frame put, on average, fewer than 1.5 speakers there, so "
              "the count says one (or none), and no later stage can add the second speaker.", "",
              "Target: DER <= 20% (pyannote 3.1 publishes 18.8% on the full AMI test set; its models "
              "come from a hub and cannot be run here).", "",
              "## Live: speaker labels on the words of finals (`/v1/listen?diarize=true`)", "",
              "voxa.listen(..., diarize=True) with tiny.en, fed as fast as it reads. Accuracy: the share of "
              "words whose label names the person speaking at the word's middle, labels mapped one-to-one "
              "onto people (an unlabelled word is wrong).", "",
              "| stream | word accuracy | words | labels found | people in the reference | RTF |",
              "|---|---|---|---|---|---|"]
    for r in live:
        rtf = f"{r['rtf']:.3f}" if r["rtf"] else "n/a"
        lines.append(f"| {r['name']} | {100 * r['accuracy']:.1f}% | {r['words']} | {r['speakers']} | {r['people']} | {rtf} |")
    if long:
        lines += ["", f"## A long recording (`--long {args.long:g}`)", "",
                  "The ten clips tiled end to end, diarized in a fresh process with the defaults.", "",
                  "| audio | wall | RTF | speakers found | turns | peak memory | in use just before the call (samples, libraries) |",
                  "|---|---|---|---|---|---|---|",
                  f"| {long['audio']:.0f} s | {long['wall']:.0f} s | {long['wall'] / long['audio']:.3f} | {long['speakers']} "
                  f"| {long['turns']} | {long['peak_mb']:.0f} MB | {long['before_mb']:.0f} MB |"]
    return common.write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    sys.exit(main())

"""The first diarization pipeline (voxa 0.1): Silero VAD, Resemblyzer d-vectors on sliding
windows, agglomerative clustering, frame resegmentation. DER 37% on the shared AMI clips against
the current pipeline's (``voxa.diarization``) 25%; kept for ``diarize(..., method="v1")``, for the
``speech=`` / ``overlapped=`` hints (where an outside voice-activity or overlap detector plugs in),
and as the benchmark's baseline row.

1. **Voice activity**: Silero VAD regions (``vad.speech_regions``, tight padding).
2. **Speaker embeddings**: Resemblyzer's d-vector LSTM (256-d) on windows of ``window_s``
   sliding by ``step_s`` over each region.
3. **Clustering**: agglomerative, average linkage on cosine distance (scipy), cut at a distance
   ``threshold`` calibrated on the shared AMI train clips, or at the speaker count given.
   Clusters holding under ``min_cluster_s`` of speech are folded into the nearest large one.
4. **Resegmentation**: every 10 ms frame of speech scores each speaker by the mean similarity of
   the windows that cover it to the speaker's centroid; the best wins, a mode filter smooths the
   labels, and a frame where the runner-up scores within ``overlap_margin`` of the winner (or
   inside a given ``overlapped`` span) also gets the runner-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .errors import InputError
from .speakers import embedder
from .types import Diarization, Turn
from .vad import VadConfig, speech_regions

log = logging.getLogger("voxa.diarize")

FRAME_S = 0.01  # resolution of the speaker labels
MAX_LINKAGE = 6000  # windows clustered directly (~50 min of speech); longer input is sampled
# Silero at 0.5 hears no speech at all in some far-field AMI clips; 0.2 was best there.
VAD = VadConfig(threshold=0.2, min_speech_ms=200, min_silence_ms=300, speech_pad_ms=60, max_speech_s=1e9)
_VAD = VAD  # the name diarize() uses below


@dataclass
class V1Options:
    window_s: float = 1.5  # embedding window
    step_s: float = 0.5  # its hop
    min_region_s: float = 0.3  # shorter speech regions are labelled from their neighbours
    threshold: float = 0.35  # cosine distance where clustering stops (calibrated on the AMI train clips)
    min_cluster_s: float = 0.5  # with no speaker count given, smaller clusters join the nearest large one
    smooth_s: float = 0.5  # mode filter over frame labels
    overlap_margin: float = 0.0  # runner-up this close to the winner: overlapped speech (0: off)


def windows(regions: list[tuple[int, int]], opts: V1Options) -> list[tuple[int, int]]:
    """Embedding windows (sample spans) over speech regions; a short region is one window."""
    win, hop = int(opts.window_s * SAMPLE_RATE), int(opts.step_s * SAMPLE_RATE)
    out = []
    for a, b in regions:
        if b - a < opts.min_region_s * SAMPLE_RATE:
            continue
        if b - a <= win:
            out.append((a, b))
            continue
        starts = list(range(a, b - win + 1, hop))
        if starts[-1] + win < b:
            starts.append(b - win)
        out += [(s, s + win) for s in starts]
    return out


def cluster(emb: np.ndarray, spans: list[tuple[int, int]], opts: V1Options, *, num: int | None,
            lo: int, hi: int | None) -> np.ndarray:
    """Cluster labels 0..k-1 for the window embeddings."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(emb)
    if n <= 1:
        return np.zeros(n, dtype=int)
    if n > MAX_LINKAGE:
        # Average linkage needs n² memory: cluster an even sample, then every window joins the
        # nearest centroid (the sample's speech amounts decide min_cluster_s, so it acts a little larger).
        pick = np.linspace(0, n - 1, MAX_LINKAGE).astype(int)
        sub = cluster(emb[pick], [spans[i] for i in pick], opts, num=num, lo=lo, hi=hi)
        cents = np.stack([_unit(emb[pick][sub == c].mean(0)) for c in range(int(sub.max()) + 1)])
        _, labels = np.unique(np.argmax(emb @ cents.T, 1), return_inverse=True)
        return labels
    tree = linkage(emb.astype(np.float64), method="average", metric="cosine")
    if num is not None:
        labels = fcluster(tree, t=min(num, n), criterion="maxclust")
    else:
        labels = fcluster(tree, t=opts.threshold, criterion="distance")
        k = labels.max()
        if k < lo or (hi is not None and k > hi):
            labels = fcluster(tree, t=min(max(k, lo), hi or k, n), criterion="maxclust")
        else:
            labels = _fold_small(emb, spans, labels, opts, lo)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _fold_small(emb, spans, labels, opts, lo):
    """Give the windows of clusters with little speech to the nearest cluster with enough."""
    hop = opts.step_s * SAMPLE_RATE
    speech = {c: sum(min(b - a, hop) for (a, b), lab in zip(spans, labels) if lab == c) / SAMPLE_RATE
              for c in set(labels)}
    big = [c for c, s in sorted(speech.items(), key=lambda x: -x[1]) if s >= opts.min_cluster_s]
    big = big or [max(speech, key=speech.get)]
    while len(big) < lo and len(big) < len(speech):
        big.append(max((c for c in speech if c not in big), key=speech.get))
    cents = {c: _unit(emb[labels == c].mean(0)) for c in big}
    out = labels.copy()
    for i, lab in enumerate(labels):
        if lab not in cents:
            out[i] = max(cents, key=lambda c: float(emb[i] @ cents[c]))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def resegment(n_frames: int, regions, spans, emb, labels, opts: V1Options,
              overlapped: np.ndarray | None = None):
    """Per 10 ms frame: the best speaker (-1: no speech) and the runner-up where speech overlaps:
    where the ``overlap_margin`` rule says so, or where the boolean frame mask ``overlapped`` does."""
    k = int(labels.max()) + 1
    cents = np.stack([_unit(emb[labels == c].mean(0)) for c in range(k)])
    sims = emb @ cents.T  # (windows, speakers)
    score = np.zeros((n_frames, k), dtype=np.float32)
    count = np.zeros(n_frames, dtype=np.float32)
    f = SAMPLE_RATE * FRAME_S
    for (a, b), s in zip(spans, sims):
        i, j = int(a / f), max(int(a / f) + 1, int(b / f))
        score[i:j] += s
        count[i:j] += 1
    best = np.full(n_frames, -1, dtype=int)
    second = np.full(n_frames, -1, dtype=int)
    for a, b in regions:
        i, j = int(a / f), max(int(a / f) + 1, int(b / f))
        seen = count[i:j] > 0
        if not seen.any():  # too short to embed: nearest labelled frame decides, later
            best[i:j] = -2
            continue
        avg = score[i:j] / np.maximum(count[i:j], 1)[:, None]
        lab = np.argmax(avg, 1)
        lab[~seen] = -2
        best[i:j] = lab
        if (opts.overlap_margin > 0 or overlapped is not None) and k > 1:
            order = np.argsort(-avg, 1)
            top, run = avg[np.arange(j - i), order[:, 0]], avg[np.arange(j - i), order[:, 1]]
            ov = seen & (top - run <= opts.overlap_margin)
            if overlapped is not None:
                ov |= seen & overlapped[i:j]
            second[i:j][ov] = order[ov, 1]
    best = _fill_unlabelled(best)
    return _mode_filter(best, int(opts.smooth_s / FRAME_S) | 1), second


def _fill_unlabelled(best: np.ndarray) -> np.ndarray:
    """Frames of speech with no window (-2) take the label of the nearest labelled frame."""
    todo = np.flatnonzero(best == -2)
    known = np.flatnonzero(best >= 0)
    if not todo.size:
        return best
    if not known.size:
        best[todo] = 0
        return best
    pos = np.clip(np.searchsorted(known, todo), 1, known.size - 1) if known.size > 1 else np.zeros_like(todo)
    left, right = known[np.maximum(pos - 1, 0)], known[pos]
    nearest = np.where(np.abs(todo - left) <= np.abs(right - todo), left, right)
    best[todo] = best[nearest]
    return best


def _mode_filter(labels: np.ndarray, width: int) -> np.ndarray:
    """Most common speaker over ``width`` frames, inside speech only (silence stays silence)."""
    if width <= 1 or labels.max() < 1:
        return labels
    k = labels.max() + 1
    onehot = np.zeros((labels.size + width, k), dtype=np.int32)
    speech = labels >= 0
    onehot[np.flatnonzero(speech) + width // 2, labels[speech]] = 1
    csum = np.cumsum(onehot, 0)
    win = csum[width:] - csum[:-width]
    out = np.argmax(win[: labels.size], 1)
    return np.where(speech, out, -1)


def turns_from_frames(best: np.ndarray, second: np.ndarray, names: list[str]) -> tuple[list[Turn], list[tuple[float, float]]]:
    turns, overlaps = [], []
    for lab, track in ((best, turns), (second, None)):
        edges = np.flatnonzero(np.diff(np.concatenate([[-1], lab, [-1]])) != 0)
        for a, b in zip(edges[:-1], edges[1:]):
            if lab[a] < 0:
                continue
            t = Turn(round(float(a) * FRAME_S, 3), round(float(b) * FRAME_S, 3), names[lab[a]])
            if track is None:
                turns.append(t)
                overlaps.append((t.start, t.end))
            else:
                track.append(t)
    turns.sort(key=lambda t: (t.start, t.speaker))
    return turns, _merge_spans(overlaps)


def _merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def diarize(pcm: np.ndarray, name: str = "<array>", *, num=None, lo=1, hi=None,
            opts: V1Options | None = None, speech: list[tuple[float, float]] | None = None,
            overlapped: list[tuple[float, float]] | None = None) -> Diarization:
    """The first pipeline on 16 kHz mono samples. ``speech`` (start, end seconds) replaces Silero's regions
    and ``overlapped`` marks where two voices sound at once (each frame there also gets the
    runner-up speaker): the places where your own voice-activity or overlap detector plugs in.
    The benchmark passes the reference's to measure what better detectors would be worth."""
    opts = opts or V1Options()
    duration = round(pcm.size / SAMPLE_RATE, 3)
    n_frames = int(np.ceil(pcm.size / (SAMPLE_RATE * FRAME_S)))
    if speech is None:
        regions = speech_regions(pcm, _VAD)
    else:
        regions = [(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in _given("speech", speech, duration)]
    mask = None
    if overlapped is not None:
        mask = np.zeros(n_frames, dtype=bool)
        for a, b in _given("overlapped", overlapped, duration):
            mask[int(round(a / FRAME_S)):int(round(b / FRAME_S))] = True
    spans = windows(regions, opts)
    warnings = []
    if not spans:
        if num:
            warnings.append(f"asked for {num} speakers but no speech was found")
        return Diarization(name, duration, [], [], [], warnings)
    enc = embedder()  # first: without the extra it raises the one-line ModelError
    from resemblyzer.audio import normalize_volume

    pcm = normalize_volume(pcm, -30, increase_only=True)
    emb = enc([pcm[a:b] for a, b in spans])
    if num is not None and num > len(spans):
        warnings.append(f"asked for {num} speakers but the speech supports at most {len(spans)}")
    if lo > len(spans):
        warnings.append(f"asked for at least {lo} speakers but the speech supports at most {len(spans)}")
    labels = cluster(emb, spans, opts, num=num, lo=min(lo, len(spans)), hi=hi)
    best, second = resegment(n_frames, regions, spans, emb, labels, opts, mask)
    order = _first_appearance(best)
    names = [""] * (int(labels.max()) + 1)
    for rank, lab in enumerate(order):
        names[lab] = f"SPEAKER_{rank:02d}"
    for lab in range(len(names)):  # a cluster that lost every frame to smoothing
        names[lab] = names[lab] or f"SPEAKER_{len(order) + lab:02d}"
    turns, overlaps = turns_from_frames(best, second, names)
    speakers = sorted({t.speaker for t in turns})
    if num is not None and len(speakers) < num <= len(spans):
        warnings.append(f"asked for {num} speakers; {len(speakers)} remain after smoothing")
    for w in warnings:
        log.warning("%s: %s", name, w)
    return Diarization(name, duration, turns, speakers, overlaps, warnings)


def _given(name: str, spans, duration: float) -> list[tuple[float, float]]:
    """Spans in seconds from the caller, checked (InputError), clipped to the audio, merged."""
    out = []
    for span in spans:
        try:
            a, b = (float(v) for v in span)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be (start, end) pairs in seconds (got {span!r})") from None
        if not (0 <= a < b) or not np.isfinite(b):
            raise InputError(f"{name}: each span needs 0 <= start < end (got {span!r})")
        if a < duration:
            out.append((a, min(b, duration)))
    return _merge_spans(out)


def _first_appearance(best: np.ndarray) -> list[int]:
    seen: list[int] = []
    for lab in best[best >= 0]:
        if lab not in seen:
            seen.append(int(lab))
    return seen



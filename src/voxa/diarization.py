"""Speaker diarization: who spoke when, and which words each speaker said.

The pipeline of pyannote 3.x, on models that ship in PyPI packages (``voxa.speakers``):

1. **Segmentation**: pyannote's segmentation-3.0 on 10 s chunks sliding by ``step_s`` (1 s).
   Per 17 ms frame it scores 7 powerset classes (nobody, one of 3 *local* speakers, a pair at
   once); the best class, after log-biases that favour speech (``none_bias``) and overlap
   (``pair_bias``), says which local speakers are active, overlap included.
2. **Embeddings**: CAM++ (192-d) for every local speaker of every chunk, from the fbank frames
   where that speaker speaks alone (all its frames when that is under ``min_embed_s``).
3. **Clustering**: agglomerative, average linkage on cosine similarity, with a cannot-link rule
   (two local speakers of one chunk never merge), cut at the distance ``threshold`` or at the
   speaker count you give (``num_speakers``; ``min_speakers``..``max_speakers`` clamp the cut).
   Clusters with under ``min_cluster_s`` of speech are no speaker. Then, chunk by chunk, local
   speakers go to global speakers by a Hungarian assignment (one each).
4. **Reconstruction**: per frame, the number of speakers is the rounded mean of the covering
   chunks' local counts, and that many global speakers with the highest mean activity are on.
   Turns keep overlap; ``overlaps`` lists where two or more speak.
5. **Words**: each word goes to the speaker whose turns overlap it most (the nearest turn when
   none does), as WhisperX's ``assign_word_speakers``; a word inside overlapped speech also lists
   every speaker heard there (``Word.speakers``); segments are split where the speaker changes.

Thresholds were calibrated leave-one-out on the shared AMI train clips: DER 25.6% at collar 0
(overlap scored) against 37.0% for the first pipeline, which stays as ``method="v1"``
(``voxa.diarization_v1``) and takes outside speech / overlap spans (``speech=``, ``overlapped=``).

A file with one speaker per channel can skip all this: ``channels="split"`` labels each
channel's speech with its own speaker, and ``transcribe(..., channels="split")`` transcribes the
channels apart, so talk over each other stays readable.

    d = voxa.diarize("meeting.wav", max_speakers=4)
    for turn in d.turns:
        print(f"{turn.start:.1f}-{turn.end:.1f} {turn.speaker}")
    d.to_annotation()  # pyannote.core.Annotation, to score with pyannote.metrics
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from . import audio as audio_io
from . import diarization_v1 as v1
from .audio import SAMPLE_RATE
from .errors import InputError, VoxaError
from .speakers import (CHUNK, EMBED_DIM, FBANK_HOP, FRAME_RF, FRAME_STEP, N_FRAMES, POWERSET,
                       embedder, fbank, fbank_grid, missing, segmenter, speaker_encoder)
from .types import Diarization, Segment, Transcript, Turn, Word
from .vad import speech_regions

if TYPE_CHECKING:
    from .asr import Failure

__all__ = ["DiarizeOptions", "attribute", "check", "diarize", "diarize_array", "embedder", "missing",
           "plot", "ready", "speaker_of", "transcribe", "transcribe_many", "voiceprint"]

log = logging.getLogger("voxa.diarize")

_VAD = v1.VAD  # voice activity for channels="split" and voiceprints


@dataclass
class DiarizeOptions:
    # calibrated leave-one-out on the shared AMI train clips (benchmarks/diarization.py)
    step_s: float = 1.0  # hop of the 10 s segmentation chunks (pyannote: 10% of the chunk)
    none_bias: float = -1.0  # added to the log-prob of "nobody speaks" (negative: more speech)
    pair_bias: float = 1.5  # added to the log-probs of the pair classes (positive: more overlap)
    min_embed_s: float = 0.25  # no embedding from less speech than this
    embed_every: int = 1  # embed the speakers of every n-th chunk; the rest are matched by overlap
    threshold: float = 0.55  # cosine distance where clustering stops
    min_fit_s: float = 0.5  # embeddings of less clean speech are assigned but do not shape clusters
    min_cluster_s: float = 1.0  # a cluster with less speech behind it is no speaker
    max_fit: int = 1500  # embeddings clustered directly (O(n^2)); more are sampled evenly
    batch: int = 8  # segmentation chunks per model call


def ready() -> None:
    """Load the speaker models now (once per process): without the diarize extra this raises
    the one-line ModelError, before any audio is read."""
    from .speakers import extra_missing

    extra_missing()
    segmenter()
    speaker_encoder()


def check(num_speakers=None, min_speakers=None, max_speakers=None, channels: str = "mix"
          ) -> tuple[int | None, int, int | None]:
    """Validate the speaker hints (InputError with a clear message); returns (num, min, max)."""
    num, lo, hi = num_speakers, min_speakers, max_speakers
    if channels not in ("mix", "split"):
        raise InputError(f"channels must be 'mix' or 'split' (got {channels!r})")
    for name, v in (("num_speakers", num), ("min_speakers", lo), ("max_speakers", hi)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise InputError(f"{name} must be a whole number of at least 1 (got {v!r})")
    if num is not None and (lo is not None or hi is not None):
        raise InputError("give num_speakers, or min_speakers/max_speakers, not both")
    if lo is not None and hi is not None and lo > hi:
        raise InputError(f"min_speakers ({lo}) is larger than max_speakers ({hi})")
    return num, lo or 1, hi


# --------------------------------------------------------------------------- 1. segmentation
def chunk_starts(n_samples: int, step_s: float) -> list[int]:
    """Chunk start samples, multiples of FRAME_STEP so that every chunk's frames sit on one
    grid; the last chunk ends at or after the end of the audio (zeros pad it)."""
    step = max(1, round(step_s * SAMPLE_RATE / FRAME_STEP)) * FRAME_STEP
    if n_samples <= CHUNK:
        return [0]
    last = -(-(n_samples - CHUNK) // FRAME_STEP) * FRAME_STEP
    return list(range(0, last, step)) + [last]


def segment(pcm: np.ndarray, starts: list[int], batch: int) -> np.ndarray:
    """Powerset log-probs [C, 589, 7] of the chunks starting at ``starts`` (float16: a two-hour
    recording holds 7,200 chunks)."""
    seg = segmenter()
    out = np.zeros((len(starts), N_FRAMES, 7), dtype=np.float16)
    for lo in range(0, len(starts), batch):
        x = np.zeros((len(starts[lo:lo + batch]), CHUNK), dtype=np.float32)
        for i, s in enumerate(starts[lo:lo + batch]):
            piece = pcm[s:s + CHUNK]
            x[i, :piece.size] = piece
        out[lo:lo + len(x)] = seg(x)
    return out


def binarize(logp: np.ndarray, none_bias: float = 0.0, pair_bias: float = 0.0) -> np.ndarray:
    """Powerset log-probs [..., 7] -> activity of the 3 local speakers [..., 3] (0/1)."""
    bias = np.array([none_bias, 0, 0, 0, pair_bias, pair_bias, pair_bias], dtype=np.float32)
    return POWERSET[np.argmax(logp.astype(np.float32) + bias, axis=-1)]


# --------------------------------------------------------------------------- 2. embeddings
def embed(pcm: np.ndarray, starts: list[int], local: np.ndarray, opts: DiarizeOptions):
    """CAM++ embedding per (chunk, local speaker) from the fbank frames where it speaks alone
    (all its frames when that is too short). Returns embeddings [C, 3, 192] (NaN: none), the
    seconds behind each [C, 3], and whether they were clean (no overlap) [C, 3]."""
    enc = speaker_encoder()
    C = len(starts)
    emb = np.full((C, 3, EMBED_DIM), np.nan, dtype=np.float32)
    dur = np.zeros((C, 3), dtype=np.float32)
    clean = np.zeros((C, 3), dtype=bool)
    feats = fbank(pcm)
    grid = fbank_grid(len(feats))
    for c, s0 in enumerate(starts):
        if c % opts.embed_every and c != len(starts) - 1:
            continue
        lo, hi = np.searchsorted(grid, [s0 // FRAME_STEP, s0 // FRAME_STEP + N_FRAMES])
        act = local[c][grid[lo:hi] - s0 // FRAME_STEP]  # [n, 3] at each fbank frame of the chunk
        alone = act.sum(1) == 1
        for s in range(3):
            use, ok = np.flatnonzero((act[:, s] > 0) & alone), True
            if use.size * FBANK_HOP / SAMPLE_RATE < opts.min_embed_s:
                use, ok = np.flatnonzero(act[:, s] > 0), False
            if use.size * FBANK_HOP / SAMPLE_RATE < opts.min_embed_s:
                continue
            emb[c, s] = enc(feats[lo + use])
            dur[c, s] = use.size * FBANK_HOP / SAMPLE_RATE
            clean[c, s] = ok
    return emb, dur, clean


# --------------------------------------------------------------------------- 3. clustering
def agglomerate(X: np.ndarray, groups: np.ndarray, *, threshold: float, num: int | None = None,
                lo: int = 1, hi: int | None = None) -> np.ndarray:
    """Average-linkage clustering of unit vectors X [n, d] on cosine similarity that never merges
    two clusters holding members of one group (chunk). Stops at distance ``threshold`` (with
    the count clamped to lo..hi) or at ``num`` clusters. Labels 0..k-1."""
    n = len(X)
    if n == 0:
        return np.zeros(0, dtype=int)
    total = (X @ X.T).astype(np.float64)  # summed similarity between clusters' members
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    blocked = groups[:, None] == groups[None, :]
    labels = np.arange(n)
    k = n
    while k > max(num if num is not None else lo, 1):
        sim = np.where(blocked | ~alive[:, None] | ~alive[None, :], -np.inf, total / np.outer(size, size))
        a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if not np.isfinite(sim[a, b]):
            break  # every pair left is cannot-linked
        if num is None and 1.0 - sim[a, b] > threshold and (hi is None or k <= hi):
            break
        total[a, :] += total[b, :]
        total[:, a] += total[:, b]
        size[a] += size[b]
        blocked[a, :] |= blocked[b, :]
        blocked[:, a] |= blocked[:, b]
        alive[b] = False
        labels[labels == b] = a
        k -= 1
    return np.unique(labels, return_inverse=True)[1]


def cluster(emb, dur, clean, opts: DiarizeOptions, *, num=None, lo=1, hi=None) -> np.ndarray:
    """Unit centroids [K, 192] of the global speakers."""
    ok = np.isfinite(emb[..., 0]) & (dur >= opts.min_fit_s) & clean
    if not ok.any():  # nothing long and clean: fit on whatever was embedded
        ok = np.isfinite(emb[..., 0])
    if not ok.any():
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    c_idx, s_idx = np.nonzero(ok)
    if len(c_idx) > opts.max_fit:
        pick = np.linspace(0, len(c_idx) - 1, opts.max_fit).astype(int)
        c_idx, s_idx = c_idx[pick], s_idx[pick]
    X = emb[c_idx, s_idx]
    labels = agglomerate(X, c_idx, threshold=opts.threshold, num=num, lo=lo, hi=hi)
    K = int(labels.max()) + 1
    speech = np.array([dur[c_idx, s_idx][labels == k].sum() for k in range(K)])
    order = np.argsort(-speech)
    if num is not None:
        keep = list(order[:num])
    else:
        keep = [k for k in order if speech[k] >= opts.min_cluster_s] or [order[0]]
        keep = list(order[:max(len(keep), min(lo, K))])[:hi]
    cents = np.stack([X[labels == k].mean(0) for k in keep])
    return cents / np.linalg.norm(cents, axis=1, keepdims=True)


def assign(emb, starts, local, cents) -> np.ndarray:
    """Global speaker of each (chunk, local speaker) [C, 3] (-2: inactive, -1: none): a
    Hungarian assignment per chunk on cosine similarity (two local speakers never share one);
    local speakers with no embedding take the free global speaker whose activity in the
    neighbouring chunks overlaps theirs most."""
    from scipy.optimize import linear_sum_assignment

    C, K = len(starts), len(cents)
    hard = np.full((C, 3), -1, dtype=int)
    active = local.sum(1) > 0
    hard[~active] = -2
    has = np.isfinite(emb[..., 0]) & active
    for c in range(C):
        ss = np.flatnonzero(has[c])
        if ss.size:
            r, k = linear_sum_assignment(-(emb[c, ss] @ cents.T))
            hard[c, ss[r]] = k
    todo = np.argwhere(hard == -1)
    if len(todo):
        agg = aggregate(local, hard, starts, K)
        for c, s in todo:
            o = starts[c] // FRAME_STEP
            score = agg[o:o + N_FRAMES].T @ local[c, :, s]
            score[hard[c][hard[c] >= 0]] = -1
            if score.max() > 0:
                hard[c, s] = int(np.argmax(score))
    return hard


# --------------------------------------------------------------------------- 4. reconstruction
def aggregate(local: np.ndarray, hard: np.ndarray, starts: list[int], K: int) -> np.ndarray:
    """Mean over the covering chunks of each global speaker's activity, per frame [F, K]."""
    F = starts[-1] // FRAME_STEP + N_FRAMES
    acc = np.zeros((F, max(K, 1)), dtype=np.float32)
    cover = np.zeros(F, dtype=np.float32)
    for c, s0 in enumerate(starts):
        o = s0 // FRAME_STEP
        cover[o:o + N_FRAMES] += 1
        for s in range(3):
            if hard[c, s] >= 0:
                acc[o:o + N_FRAMES, hard[c, s]] += local[c, :, s]
    return acc[:, :K] / np.maximum(cover, 1)[:, None]


def speaker_count(local: np.ndarray, starts: list[int]) -> np.ndarray:
    """How many speakers are on, per frame [F]: the rounded mean of the covering chunks' local
    speaker counts."""
    F = starts[-1] // FRAME_STEP + N_FRAMES
    n_on, cover = np.zeros(F, dtype=np.float32), np.zeros(F, dtype=np.float32)
    for c, s0 in enumerate(starts):
        n_on[s0 // FRAME_STEP:s0 // FRAME_STEP + N_FRAMES] += local[c].sum(1)
        cover[s0 // FRAME_STEP:s0 // FRAME_STEP + N_FRAMES] += 1
    return np.floor(n_on / np.maximum(cover, 1) + 0.5).astype(int)


def reconstruct(logp: np.ndarray, local: np.ndarray, hard: np.ndarray, starts: list[int], K: int,
                count: np.ndarray | None = None) -> np.ndarray:
    """Which global speakers are on, per frame [F, K]: as many as ``count`` says
    (``speaker_count`` by default), those with the highest mean activity."""
    if count is None:
        count = speaker_count(local, starts)
    count = np.minimum(count, K)
    hard_agg = aggregate(local, hard, starts, K)
    soft = np.exp(logp.astype(np.float32)) @ POWERSET  # marginal activity: breaks ties
    score = hard_agg + 1e-3 * aggregate(soft, hard, starts, K)
    order = np.argsort(-score, axis=1, kind="stable")
    on = np.zeros_like(score, dtype=bool)
    rows = np.arange(len(score))
    for r in range(K):
        pick = (count > r) & (hard_agg[rows, order[:, r]] > 0)
        on[rows[pick], order[pick, r]] = True
    return on


def frame_time(g) -> np.ndarray:
    """Start (s) of frame g's 270-sample cell around the centre of what it hears."""
    return (np.asarray(g) * FRAME_STEP + FRAME_RF / 2 - FRAME_STEP / 2) / SAMPLE_RATE


def _runs(x: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], x.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _span(a: int, b: int, n: int, duration: float) -> tuple[float, float]:
    """Frames [a, b) in seconds; the first and last frames reach the ends of the audio."""
    start = 0.0 if a == 0 else float(frame_time(a))
    end = duration if b >= n else float(frame_time(b))
    return round(max(0.0, start), 3), round(min(duration, end), 3)


def turns_of(on: np.ndarray, duration: float) -> tuple[list[Turn], list[str], list[tuple[float, float]]]:
    """Frame activity [F, K] -> turns (speakers named in order of first appearance), the
    speaker names, and the stretches where two or more speak."""
    n = len(on)
    raw = sorted((*_span(a, b, n, duration), k) for k in range(on.shape[1]) for a, b in _runs(on[:, k]))
    raw = [(a, b, k) for a, b, k in raw if b > a]
    names: dict[int, str] = {}
    for _, _, k in raw:
        names.setdefault(k, f"SPEAKER_{len(names):02d}")
    overlaps = [o for a, b in _runs(on.sum(1) >= 2) if (o := _span(a, b, n, duration))[1] > o[0]]
    return [Turn(a, b, names[k]) for a, b, k in raw], sorted(names.values()), overlaps


# --------------------------------------------------------------------------- entry points
def diarize(source, *, num_speakers: int | None = None, min_speakers: int | None = None,
            max_speakers: int | None = None, channels: str = "mix", method: str = "v2",
            options: DiarizeOptions | None = None, speech: list[tuple[float, float]] | None = None,
            overlapped: list[tuple[float, float]] | None = None, max_duration: float | None = None) -> Diarization:
    """Who spoke when in ``source`` (anything ``voxa.audio`` reads). ``channels="split"``: one
    speaker per channel, no speaker model needed. ``method="v1"``, ``speech`` and ``overlapped``:
    the first pipeline (see ``diarize_array``). ``max_duration``: refuse longer audio while
    decoding it (TooLong)."""
    num, lo, hi = check(num_speakers, min_speakers, max_speakers, channels)
    name = audio_io.source_name(source)
    if channels == "split":
        return _by_channel(name, audio_io.decode(source, mono=False, max_seconds=max_duration))
    return diarize_array(audio_io.decode(source, max_seconds=max_duration), name, num=num, lo=lo, hi=hi,
                         opts=options, method=method, speech=speech, overlapped=overlapped)


def diarize_array(pcm: np.ndarray, name: str = "<array>", *, num=None, lo=1, hi=None,
                  opts: DiarizeOptions | v1.V1Options | None = None, method: str = "v2",
                  speech: list[tuple[float, float]] | None = None,
                  overlapped: list[tuple[float, float]] | None = None) -> Diarization:
    """``diarize`` on 16 kHz mono samples. ``speech`` (start, end seconds: where someone speaks)
    and ``overlapped`` (where two do) come from your own detectors and run the first pipeline,
    ``method="v1"``, which takes them (``voxa.diarization_v1``; as does ``opts=V1Options(...)``)."""
    if method not in ("v1", "v2"):
        raise InputError(f"method must be 'v1' or 'v2' (got {method!r})")
    if method == "v1" or speech is not None or overlapped is not None or isinstance(opts, v1.V1Options):
        return v1.diarize(pcm, name, num=num, lo=lo, hi=hi, speech=speech, overlapped=overlapped,
                          opts=opts if isinstance(opts, v1.V1Options) else None)
    opts = opts or DiarizeOptions()
    ready()  # without the extra: its one-line error, before any work
    pcm = np.asarray(pcm, dtype=np.float32)
    duration = round(pcm.size / SAMPLE_RATE, 3)
    warnings: list[str] = []
    starts = chunk_starts(pcm.size, opts.step_s)
    logp = segment(pcm, starts, opts.batch)
    plain = binarize(logp)  # embeddings come from the model's own best guess
    emb, dur, clean = embed(pcm, starts, plain, opts)
    cents = cluster(emb, dur, clean, opts, num=num, lo=lo, hi=hi)
    if len(cents) == 0:
        warnings.append(f"asked for {num} speakers but no speech was found" if num else "no speech found")
        for w in warnings:
            log.warning("%s: %s", name, w)
        return Diarization(name, duration, [], [], [], warnings)
    hard = assign(emb, starts, plain, cents)
    on = reconstruct(logp, binarize(logp, opts.none_bias, opts.pair_bias), hard, starts, len(cents))
    turns, speakers, overlaps = turns_of(on, duration)
    if num is not None and len(speakers) < num:
        warnings.append(f"asked for {num} speakers; the speech supports {len(speakers)}")
    if lo > 1 and len(speakers) < lo:
        warnings.append(f"asked for at least {lo} speakers; the speech supports {len(speakers)}")
    for w in warnings:
        log.warning("%s: %s", name, w)
    return Diarization(name, duration, turns, speakers, overlaps, warnings)


def _by_channel(name: str, pcm: np.ndarray) -> Diarization:
    """One speaker per channel: each channel's voice activity is its speaker's turns."""
    duration = round(pcm.shape[1] / SAMPLE_RATE, 3)
    turns = []
    for ch, x in enumerate(pcm):
        turns += [Turn(round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3), f"SPEAKER_{ch:02d}")
                  for a, b in speech_regions(np.ascontiguousarray(x), _VAD)]
    turns.sort(key=lambda t: (t.start, t.speaker))
    overlaps = []
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            if b.start >= a.end:
                break
            if b.speaker != a.speaker:
                overlaps.append((max(a.start, b.start), min(a.end, b.end)))
    speakers = sorted({t.speaker for t in turns})
    return Diarization(name, duration, turns, speakers, v1._merge_spans(overlaps),
                       [] if pcm.shape[0] > 1 else ["one channel only: channels='split' gives one speaker"])


# --------------------------------------------------------------------------- words
def voiceprint(pcm: np.ndarray, *, window_s: float = 1.6, step_s: float = 0.8,
               model: str = "resemblyzer") -> tuple[np.ndarray, float]:
    """One unit-norm speaker embedding for a recording of one voice, and the seconds of speech it
    rests on (0: no speech, zero vector). ``model="resemblyzer"`` (256-d, what consent records
    hold): the speech-weighted mean of its window embeddings; ``"campplus"`` (192-d): CAM++ on
    all of its speech at once."""
    if model == "campplus":
        regions = speech_regions(pcm, _VAD)
        speech = sum(b - a for a, b in regions) / SAMPLE_RATE
        if speech < 0.25:
            return np.zeros(EMBED_DIM, np.float32), speech
        return speaker_encoder()(fbank(np.concatenate([pcm[a:b] for a, b in regions]))), speech
    if model != "resemblyzer":
        raise InputError(f"voiceprint model must be 'resemblyzer' or 'campplus' (got {model!r})")
    enc = embedder()
    from resemblyzer.audio import normalize_volume  # after embedder(), which quiets its import

    pcm = normalize_volume(pcm, -30, increase_only=True)
    regions = speech_regions(pcm, _VAD)
    spans = v1.windows(regions, v1.V1Options(window_s=window_s, step_s=step_s))
    speech = sum(b - a for a, b in regions) / SAMPLE_RATE
    if not spans:
        return np.zeros(256, np.float32), 0.0
    weights = np.array([b - a for a, b in spans], np.float32)
    return v1._unit((enc([pcm[a:b] for a, b in spans]) * weights[:, None]).sum(0)), speech


def speaker_of(start: float, end: float, turns: list[Turn]) -> str | None:
    """The speaker whose turns overlap [start, end] most; the nearest turn when none does."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for t in turns:
        o = min(end, t.end) - max(start, t.start)
        if o > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
    if overlap:
        return max(overlap, key=overlap.get)
    mid = (start + end) / 2
    return min(turns, key=lambda t: min(abs(mid - t.start), abs(mid - t.end))).speaker


def speakers_in(start: float, end: float, turns: list[Turn], overlaps: list[tuple[float, float]]) -> list[str]:
    """Everyone speaking during [start, end] when that falls in overlapped speech (for at least
    half of it), in order of first appearance; otherwise []."""
    mid = (start + end) / 2
    if not any(a <= mid <= b for a, b in overlaps):
        return []
    out: list[str] = []
    for t in turns:
        if min(end, t.end) - max(start, t.start) >= 0.5 * max(end - start, 1e-3) and t.speaker not in out:
            out.append(t.speaker)
    return out


def attribute(transcript: Transcript, diarization: Diarization) -> Transcript:
    """Label every word with its speaker and split segments where the speaker changes."""
    turns = diarization.turns
    segments: list[Segment] = []
    for seg in transcript.segments:
        words = seg.words or []
        if not words:
            segments.append(replace(seg, speaker=speaker_of(seg.start, seg.end, turns)))
            continue
        runs: list[list[Word]] = []
        for w in words:
            w.speaker = speaker_of(w.start, w.end, turns)
            heard = speakers_in(w.start, w.end, turns, diarization.overlaps)
            w.speakers = heard if len(heard) > 1 else None
            if runs and runs[-1][-1].speaker == w.speaker:
                runs[-1].append(w)
            else:
                runs.append([w])
        for run in runs:
            text = "".join(w.word for w in run)
            segments.append(replace(seg, start=run[0].start if len(runs) > 1 else seg.start,
                                    end=run[-1].end if len(runs) > 1 else seg.end,
                                    text=text if len(runs) > 1 else seg.text, words=run, speaker=run[0].speaker))
    for n, s in enumerate(segments):
        s.id = n
    return replace(transcript, segments=segments, speakers=diarization)


def transcribe(source, engine, *, num_speakers=None, min_speakers=None, max_speakers=None,
               channels: str = "mix", method: str = "v2", **options) -> Transcript:
    """Transcribe with word timestamps, diarize, and attribute words to speakers. With
    ``channels="split"`` each channel is transcribed on its own and the words merged in time."""
    options["word_timestamps"] = True
    num, lo, hi = check(num_speakers, min_speakers, max_speakers, channels)
    name = audio_io.source_name(source)
    limit = options.get("max_duration")
    if channels != "split":  # decoded once, for both the speakers and the words
        pcm = audio_io.decode(source, max_seconds=limit)
        d = diarize_array(pcm, name, num=num, lo=lo, hi=hi, method=method)
        return attribute(replace(engine.transcribe(pcm, **options), source=name), d)
    pcm = audio_io.decode(source, mono=False, max_seconds=limit)
    d = _by_channel(name, pcm)
    parts = [engine.transcribe(np.ascontiguousarray(x), **options) for x in pcm]
    segments = []
    for ch, t in enumerate(parts):
        for s in t.segments:
            for w in s.words or []:
                w.speaker = f"SPEAKER_{ch:02d}"
            segments.append(replace(s, speaker=f"SPEAKER_{ch:02d}"))
    segments.sort(key=lambda s: (s.start, s.speaker))
    for n, s in enumerate(segments):
        s.id = n
    first = max(parts, key=lambda t: len(t.segments))
    return replace(first, source=name, duration=d.duration, segments=segments, speakers=d)


def transcribe_many(sources, engine, **kw) -> Iterator[Transcript | Failure]:
    """``transcribe`` for each source in turn; a bad input yields a Failure and the rest go on."""
    from .asr import Failure

    for source in sources:
        try:
            yield transcribe(source, engine, **kw)
        except VoxaError as e:
            yield Failure(audio_io.source_name(source), e)


# --------------------------------------------------------------------------- picture
def plot(d: Diarization, path=None) -> bytes:
    """The timeline as a PNG: one coloured lane per speaker, overlapped speech shaded. Returns
    the PNG bytes and writes them to ``path`` when given (matplotlib, headless)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    speakers = d.speakers or []
    fig = Figure(figsize=(10, 0.6 + 0.45 * max(1, len(speakers))), dpi=100)
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10"]
    for a, b in d.overlaps:
        ax.axvspan(a, b, color="0.85", zorder=0, label=None)
    for i, spk in enumerate(speakers):
        spans = [(t.start, t.end - t.start) for t in d.turns if t.speaker == spk]
        ax.broken_barh(spans, (i - 0.35, 0.7), color=colours(i % 10), zorder=1)
    ax.set_yticks(range(len(speakers)), speakers)
    ax.set_ylim(-0.6, max(1, len(speakers)) - 0.4)
    ax.set_xlim(0, max(d.duration, 0.1))
    ax.invert_yaxis()
    ax.set_xlabel("seconds" + ("  (grey: overlapped speech)" if d.overlaps else ""))
    ax.set_title(d.source if len(d.source) < 80 else "…" + d.source[-79:], fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    if path is not None:
        from pathlib import Path

        Path(path).write_bytes(png)
    return png

"""Speaker diarization: who spoke when, and which words each speaker said.

The pipeline the article describes, one step per function below:

1. **Voice activity**: Silero VAD regions (``vad.speech_regions``, tight padding).
2. **Speaker embeddings**: Resemblyzer's d-vector LSTM (256-d, L2-normalised) on windows of
   ``window_s`` sliding by ``step_s`` over each region. Resemblyzer is the one speaker model whose
   weights come from PyPI (Apache-2.0, ``pretrained.pt`` inside the wheel); it needs torch, so it
   is the ``diarize`` extra and the core stays torch-free.
3. **Clustering**: agglomerative, average linkage on cosine distance (scipy), cut at a distance
   ``threshold`` calibrated on the shared AMI train clips, or at the speaker count you give
   (``num_speakers``, or the cut clamped to ``min_speakers``..``max_speakers``). Clusters holding
   under ``min_cluster_s`` of speech are folded into the nearest large one.
4. **Resegmentation**: every 10 ms frame of speech scores each speaker by the mean similarity of
   the windows that cover it to the speaker's centroid; the best wins, a mode filter smooths the
   labels, and a frame where the runner-up scores within ``overlap_margin`` of the winner is
   marked as overlapped speech and given both.
5. **Words**: each word goes to the speaker whose turns overlap it most (the nearest turn when
   none does), as WhisperX's ``assign_word_speakers``; segments are split where the speaker
   changes.

Overlap detection is the weak step. The margin rule is off by default: on the AMI clips it gains
under a point (37.0% to 36.5% at a 0.08 margin), because it adds false alarms as it finds
overlap. ``diarize(..., speech=..., overlapped=...)`` takes speech regions and overlapped
stretches from an outside detector instead; given the reference's own, DER on the AMI clips
falls from 37% to 23% (``benchmarks/diarization.py``, the "ceiling" rows).

A file with one speaker per channel can skip 2–4: ``channels="split"`` labels each channel's
speech with its own speaker, and ``transcribe(..., channels="split")`` transcribes the channels
apart, so talk over each other stays readable.

    d = voxa.diarize("meeting.wav", max_speakers=4)
    for turn in d.turns:
        print(f"{turn.start:.1f}-{turn.end:.1f} {turn.speaker}")
    d.to_annotation()  # pyannote.core.Annotation, to score with pyannote.metrics
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from . import audio as audio_io
from .audio import SAMPLE_RATE
from .errors import InputError, ModelError, VoxaError
from .types import Diarization, Segment, Transcript, Turn, Word
from .vad import VadConfig, speech_regions

if TYPE_CHECKING:
    from .asr import Failure

log = logging.getLogger("voxa.diarize")

FRAME_S = 0.01  # resolution of the speaker labels
# Silero at 0.5 hears no speech at all in some far-field AMI clips; 0.2 was best there.
MAX_LINKAGE = 6000  # windows clustered directly (~50 min of speech); longer input is sampled
_VAD = VadConfig(threshold=0.2, min_speech_ms=200, min_silence_ms=300, speech_pad_ms=60, max_speech_s=1e9)


@dataclass
class DiarizeOptions:
    window_s: float = 1.5  # embedding window
    step_s: float = 0.5  # its hop
    min_region_s: float = 0.3  # shorter speech regions are labelled from their neighbours
    threshold: float = 0.35  # cosine distance where clustering stops (calibrated on the AMI train clips)
    min_cluster_s: float = 0.5  # with no speaker count given, smaller clusters join the nearest large one
    smooth_s: float = 0.5  # mode filter over frame labels
    overlap_margin: float = 0.0  # runner-up this close to the winner: overlapped speech (0: off)


# --------------------------------------------------------------------------- embeddings
class Embedder:
    """Resemblyzer's voice encoder on CPU, loaded once and shared (thread-safe for inference)."""

    def __init__(self):
        try:
            import torch

            with warnings.catch_warnings():  # webrtcvad (a resemblyzer dependency) warns about pkg_resources
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
                from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise ModelError("speaker diarization needs the 'diarize' extra: install a CPU torch first "
                             "(pip install torch --index-url https://download.pytorch.org/whl/cpu), "
                             f"then pip install 'voxa[diarize]' ({e.name} is missing)") from None
        self._torch = torch
        self.encoder = VoiceEncoder("cpu", verbose=False)
        self._lock = threading.Lock()

    @staticmethod
    def mel(clip: np.ndarray) -> np.ndarray:
        """Resemblyzer's input: 40 mel bands, 25 ms windows, 10 ms hop, power (frames, 40)."""
        import librosa

        return librosa.feature.melspectrogram(y=clip, sr=SAMPLE_RATE, n_fft=400, hop_length=160,
                                              n_mels=40).astype(np.float32).T

    def __call__(self, clips: list[np.ndarray], batch: int = 256) -> np.ndarray:
        """Unit-norm embeddings (len(clips), 256); mel features are made ``batch`` clips at a time,
        so a long recording does not hold all of them at once."""
        out = np.zeros((len(clips), 256), dtype=np.float32)
        torch = self._torch
        for lo in range(0, len(clips), batch):
            mels = [self.mel(c) for c in clips[lo:lo + batch]]
            by_len: dict[int, list[int]] = {}
            for i, m in enumerate(mels):
                by_len.setdefault(m.shape[0], []).append(i)
            with self._lock, torch.inference_mode():
                for idx in by_len.values():
                    x = torch.from_numpy(np.stack([mels[i] for i in idx]))
                    out[[lo + i for i in idx]] = self.encoder(x).numpy()
        return out


_EMBEDDER: Embedder | None = None
_EMBEDDER_LOCK = threading.Lock()
_NEEDS = ("torch", "resemblyzer", "librosa", "scipy")


def missing() -> str | None:
    """What the diarize extra lacks here (a module name), or None when it is installed; cheap:
    nothing is imported or loaded."""
    import importlib.util

    for name in _NEEDS:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def embedder() -> Embedder:
    global _EMBEDDER
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            _EMBEDDER = Embedder()
        return _EMBEDDER


# --------------------------------------------------------------------------- steps
def windows(regions: list[tuple[int, int]], opts: DiarizeOptions) -> list[tuple[int, int]]:
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


def cluster(emb: np.ndarray, spans: list[tuple[int, int]], opts: DiarizeOptions, *, num: int | None,
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


def resegment(n_frames: int, regions, spans, emb, labels, opts: DiarizeOptions,
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


# --------------------------------------------------------------------------- entry points
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


def diarize(source, *, num_speakers: int | None = None, min_speakers: int | None = None,
            max_speakers: int | None = None, channels: str = "mix",
            options: DiarizeOptions | None = None, speech: list[tuple[float, float]] | None = None,
            overlapped: list[tuple[float, float]] | None = None, max_duration: float | None = None) -> Diarization:
    """Who spoke when in ``source`` (anything ``voxa.audio`` reads). ``channels="split"``: one
    speaker per channel, no speaker model needed. ``speech`` and ``overlapped``: see
    ``diarize_array``. ``max_duration``: refuse longer audio while decoding it (TooLong)."""
    num, lo, hi = check(num_speakers, min_speakers, max_speakers, channels)
    name = audio_io.source_name(source)
    if channels == "split":
        return _by_channel(name, audio_io.decode(source, mono=False, max_seconds=max_duration))
    return diarize_array(audio_io.decode(source, max_seconds=max_duration), name, num=num, lo=lo, hi=hi, opts=options or DiarizeOptions(),
                         speech=speech, overlapped=overlapped)


def diarize_array(pcm: np.ndarray, name: str = "<array>", *, num=None, lo=1, hi=None,
                  opts: DiarizeOptions | None = None, speech: list[tuple[float, float]] | None = None,
                  overlapped: list[tuple[float, float]] | None = None) -> Diarization:
    """``diarize`` on 16 kHz mono samples. ``speech`` (start, end seconds) replaces Silero's regions
    and ``overlapped`` marks where two voices sound at once (each frame there also gets the
    runner-up speaker): the places where your own voice-activity or overlap detector plugs in.
    The benchmark passes the reference's to measure what better detectors would be worth."""
    opts = opts or DiarizeOptions()
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
    return Diarization(name, duration, turns, speakers, _merge_spans(overlaps),
                       [] if pcm.shape[0] > 1 else ["one channel only: channels='split' gives one speaker"])


# --------------------------------------------------------------------------- words
def voiceprint(pcm: np.ndarray, *, window_s: float = 1.6, step_s: float = 0.8) -> tuple[np.ndarray, float]:
    """One unit-norm speaker embedding for a recording of one voice (the speech-weighted mean of
    its window embeddings), and the seconds of speech it rests on (0: no speech, zero vector)."""
    enc = embedder()
    from resemblyzer.audio import normalize_volume  # after embedder(), which quiets its import

    pcm = normalize_volume(pcm, -30, increase_only=True)
    regions = speech_regions(pcm, _VAD)
    spans = windows(regions, DiarizeOptions(window_s=window_s, step_s=step_s))
    speech = sum(b - a for a, b in regions) / SAMPLE_RATE
    if not spans:
        return np.zeros(256, np.float32), 0.0
    weights = np.array([b - a for a, b in spans], np.float32)
    return _unit((enc([pcm[a:b] for a, b in spans]) * weights[:, None]).sum(0)), speech


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
               channels: str = "mix", **options) -> Transcript:
    """Transcribe with word timestamps, diarize, and attribute words to speakers. With
    ``channels="split"`` each channel is transcribed on its own and the words merged in time."""
    options["word_timestamps"] = True
    num, lo, hi = check(num_speakers, min_speakers, max_speakers, channels)
    name = audio_io.source_name(source)
    limit = options.get("max_duration")
    if channels != "split":  # decoded once, for both the speakers and the words
        pcm = audio_io.decode(source, max_seconds=limit)
        d = diarize_array(pcm, name, num=num, lo=lo, hi=hi)
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

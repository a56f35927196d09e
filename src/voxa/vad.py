"""Voice activity detection: where in a recording is there speech?

Silero VAD v6 as ONNX, the copy faster-whisper ships (MIT), run on onnxruntime: no torch, no
download. ``speech_regions`` works on one array; ``StreamingRegions`` walks a long recording
block by block and carries a speech region that runs over a block's end into the next block, so
regions are never cut by the blocking and memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from .audio import SAMPLE_RATE


@dataclass
class VadConfig:
    threshold: float = 0.35
    min_speech_ms: int = 250
    min_silence_ms: int = 2000
    speech_pad_ms: int = 400
    max_speech_s: float = 28.0

    def options(self) -> VadOptions:
        return VadOptions(
            threshold=self.threshold,
            min_speech_duration_ms=self.min_speech_ms,
            min_silence_duration_ms=self.min_silence_ms,
            speech_pad_ms=self.speech_pad_ms,
            max_speech_duration_s=self.max_speech_s,
        )


def speech_regions(audio: np.ndarray, config: VadConfig | None = None) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech in 16 kHz mono ``audio``."""
    if audio.size < 512:
        return []
    cfg = config or VadConfig()
    return [(s["start"], s["end"]) for s in get_speech_timestamps(audio, cfg.options(), SAMPLE_RATE)]


@dataclass
class Region:
    start: float  # seconds from the start of the recording
    audio: np.ndarray

    @property
    def end(self) -> float:
        return self.start + self.audio.size / SAMPLE_RATE


def stream_regions(
    blocks: Iterable[np.ndarray], config: VadConfig | None = None, *, vad: bool = True,
    max_region_s: float = 28.0,
) -> Iterator[Region]:
    """Speech regions of a recording given as consecutive blocks.

    With ``vad=False`` every sample is kept, cut into pieces of at most ``max_region_s``.
    A region still open at a block's end is carried over, so it is judged with the audio that
    follows it. Each region is at most ``max_region_s`` long.
    """
    cfg = config or VadConfig(max_speech_s=max_region_s)
    max_n = int(max_region_s * SAMPLE_RATE)
    min_silence_n = cfg.min_silence_ms * SAMPLE_RATE // 1000
    pad_n = cfg.speech_pad_ms * SAMPLE_RATE // 1000
    carry = np.zeros(0, dtype=np.float32)
    carry_start = 0  # sample offset of carry[0] in the recording
    it = iter(blocks)
    block = next(it, None)
    while block is not None:
        following = next(it, None)
        last = following is None
        buf = np.concatenate([carry, block]) if carry.size else block
        if not vad:
            whole = buf.size if last else buf.size // max_n * max_n
            for s in range(0, whole, max_n):
                if buf[s : s + max_n].size >= SAMPLE_RATE // 10 or s == 0:
                    yield Region((carry_start + s) / SAMPLE_RATE, buf[s : s + max_n].copy())
            carry, carry_start = buf[whole:], carry_start + whole
            block = following
            continue
        regions = speech_regions(buf, cfg)
        keep_from = max(0, buf.size - pad_n)  # lead-in so the next region gets its padding
        # A region that touches the block's end may go on in the next block: judge it again
        # together with what follows, unless it is already at the size limit.
        if not last and regions and buf.size - regions[-1][1] < min_silence_n \
                and regions[-1][1] - regions[-1][0] < max_n * 0.9:
            keep_from = regions[-1][0]
            regions = regions[:-1]
        if last and regions and regions[-1][1] >= buf.size:
            regions[-1] = (regions[-1][0], _speech_end(buf, *regions[-1], cfg))
        for s, e in regions:
            yield Region((carry_start + s) / SAMPLE_RATE, buf[s:e].copy())
        carry, carry_start = buf[keep_from:].copy(), carry_start + keep_from
        block = following


def _speech_end(buf: np.ndarray, start: int, end: int, cfg: VadConfig) -> int:
    """Where speech really ends in a region that runs to the end of the recording. Silero keeps
    a region open until ``min_silence_ms`` of silence, so a recording that stops less than that
    after its last word ends in a region with up to 2 s of silence at its tail, and Whisper,
    given that silence on its own, invents a word ("Bye.", "Thank you."). Cut it to the last
    speech plus the usual padding."""
    from dataclasses import replace

    tail_from = max(start, end - cfg.min_silence_ms * SAMPLE_RATE // 1000 - SAMPLE_RATE)
    found = speech_regions(buf[tail_from:end], replace(cfg, min_silence_ms=100))
    if not found:
        return end if tail_from == start else tail_from
    return min(end, tail_from + found[-1][1])


class StreamingVad:
    """Silero speech probabilities for audio that arrives in pieces (one live stream).

    The model's recurrent state and its 64-sample context are carried from call to call, so
    the probabilities equal those of the whole recording in one go. One instance per stream;
    the ONNX session itself is shared.
    """

    FRAME = 512  # samples at 16 kHz: 32 ms per probability
    _CONTEXT = 64

    def __init__(self):
        from faster_whisper.vad import get_vad_model  # cached: one session per process

        self._model = get_vad_model()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every whole frame completed by ``samples`` (leftovers are kept)."""
        buf = np.concatenate([self._rest, samples.astype(np.float32, copy=False)])
        n = buf.size // self.FRAME
        self._rest = buf[n * self.FRAME:]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        frames = buf[: n * self.FRAME].reshape(n, self.FRAME)
        contexts = np.concatenate([self._context[None], frames[:-1, -self._CONTEXT:]])
        self._context = frames[-1, -self._CONTEXT:].copy()
        batch = np.concatenate([contexts, frames], axis=1)
        out, self._h, self._c = self._model.session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(out, dtype=np.float32).reshape(-1)


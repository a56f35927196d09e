"""End of turn: has the person finished speaking, or only paused?

The hybrid the article describes, in three signals:

1. **Silence**, as Silero VAD hears it. A pause of ``pause_s`` (0.2 s) asks the question; a
   silence of ``long_silence_s`` (2 s) ends the turn whatever else is said.
2. **Completeness**: the bundled smart-turn v3.2 model (the ONNX file inside ``pipecat-ai``,
   BSD-2; 8 MB, 70–130 ms per call on one core) scores the last 8 s of the person's audio, its
   prosody and its words, for "finished" (a whole question scores 0.99, "I would like to order
   a" 0.05).
3. **Policy**: at a pause the turn ends at once when the score is at least ``threshold`` (0.5);
   otherwise voxa keeps listening, and the turn ends when the person goes on and pauses
   again with a complete sentence, or when the silence reaches ``long_silence_s``.

:func:`completeness` scores a clip on its own (the tests use it on real LibriSpeech
utterances, whole and cut mid-sentence); :func:`strategies` builds the same policy as
Pipecat user-turn strategies for :mod:`voxa.agent`.

Why this and not only silence: a fixed 0.8 s silence rule answers slowly when people are done
and cuts them off when they think aloud; the model lets voxa answer after 0.2 s when the
sentence is complete, and wait longer when it is not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE


@dataclass
class TurnPolicy:
    pause_s: float = 0.2  # silence after which the model is asked (Silero's stop time)
    long_silence_s: float = 2.0  # silence that ends the turn whatever the model says
    threshold: float = 0.5  # completeness at or above which a pause ends the turn
    vad_threshold: float = 0.5  # Silero's speech probability (confidence)
    start_s: float = 0.2  # speech needed before a turn starts (Pipecat's VAD start time)

    def check(self) -> "TurnPolicy":
        from .errors import InputError

        if not 0.05 <= self.pause_s <= 5:
            raise InputError(f"turn.pause_s must be between 0.05 and 5 seconds, not {self.pause_s}")
        if not self.pause_s <= self.long_silence_s <= 30:
            raise InputError(f"turn.long_silence_s must be between pause_s ({self.pause_s}) and 30 seconds, "
                             f"not {self.long_silence_s}")
        if not 0 <= self.threshold <= 1:
            raise InputError(f"turn.threshold must be between 0 and 1, not {self.threshold}")
        if not 0 < self.vad_threshold < 1:
            raise InputError(f"turn.vad_threshold must be between 0 and 1, not {self.vad_threshold}")
        return self


def _analyzer_class():
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    class SmartTurn(LocalSmartTurnAnalyzerV3):
        """smart-turn v3.2 with voxa's threshold (Pipecat's is fixed at 0.5)."""

        def __init__(self, *, threshold: float = 0.5, **kw):
            super().__init__(**kw)
            self.threshold = threshold

        def _predict_endpoint(self, audio_array: np.ndarray) -> dict:
            result = super()._predict_endpoint(audio_array)
            result["prediction"] = int(result["probability"] >= self.threshold)
            return result

    return SmartTurn


def analyzer(policy: TurnPolicy | None = None):
    """A smart-turn analyzer (one per session: it buffers that session's audio)."""
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

    policy = policy or TurnPolicy()
    return _analyzer_class()(threshold=policy.threshold, params=SmartTurnParams(stop_secs=policy.long_silence_s))


def vad_analyzer(policy: TurnPolicy | None = None):
    """Pipecat's Silero VAD (its bundled ONNX, onnxruntime only) with the policy's timings."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams

    policy = policy or TurnPolicy()
    return SileroVADAnalyzer(params=VADParams(confidence=policy.vad_threshold, start_secs=policy.start_s,
                                              stop_secs=policy.pause_s, min_volume=0.0))


def strategies(policy: TurnPolicy | None = None):
    """The policy as Pipecat ``UserTurnStrategies``: a turn starts on speech (or a transcript),
    and stops when the smart-turn analyzer says so and the recogniser's final is in."""
    from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    return UserTurnStrategies(stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer(policy))])


_scorer = None
_scorer_lock = threading.Lock()


def completeness(audio, sample_rate: int = SAMPLE_RATE) -> float:
    """The probability (0–1) that the speech in ``audio`` is a finished turn, from the last 8 s
    (smart-turn v3.2). ``audio``: float32 samples at ``sample_rate``, or anything voxa decodes."""
    global _scorer
    from . import audio as audio_io

    if isinstance(audio, np.ndarray):
        samples = audio_io.resample(np.asarray(audio, np.float32).reshape(-1), sample_rate, SAMPLE_RATE)
    else:
        samples = audio_io.decode(audio)
    with _scorer_lock:
        if _scorer is None:
            _scorer = _analyzer_class()(sample_rate=SAMPLE_RATE)
        return float(_scorer._predict_endpoint(samples)["probability"])

"""End of turn: has the person finished speaking, or only paused?

The hybrid the article describes, in three signals:

1. **Silence**, as Silero VAD hears it. A pause of ``pause_s`` (0.2 s) asks the question; a
   silence of ``long_silence_s`` (2 s) ends the turn whatever else is said.
2. **Completeness**: the bundled smart-turn v3.2 model (the ONNX file inside ``pipecat-ai``,
   BSD-2; 8 MB, 70–130 ms per call on one core) scores the last 8 s of the person's audio, its
   prosody and its words, for "finished" (a whole question scores 0.99, "I would like to order
   a" 0.05).
3. **Words**: the recogniser's final text. Whisper ends a finished sentence with ". ? !" and
   seldom ends a sentence cut in the middle so.
4. **Policy**, in three tiers: at a pause (``pause_s``) the turn ends at once when the score
   is at least ``threshold`` (0.5); at a medium silence (``medium_silence_s``, 0.6 s) it ends
   when the final text ends a sentence and the score is at least ``medium_threshold`` (0.1);
   at ``long_silence_s`` it ends whatever else is said. If the person goes on, everything
   starts again at their next pause.

Measured on 60 LibriSpeech test-other utterances, whole and cut mid-sentence at a word
boundary, with tiny.en transcripts (tests/test_turn.py checks the same): the first tier
ends 70% of whole utterances and 40% of cut ones; with the second tier, 90% of whole ones and
48% of cut ones (the cut ones only matter if the person pauses 0.6 s mid-sentence). Read
speech is harder for the model than conversation, which it was trained on: without the second
tier, one read sentence in four or five waited the full 2 s in benchmarks/agent_latency.py.

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
    medium_silence_s: float = 0.6  # silence after which a finished sentence (by its text) ends the turn
    medium_threshold: float = 0.1  # ... if its completeness is at least this
    vad_threshold: float = 0.5  # Silero's speech probability (confidence)
    start_s: float = 0.2  # speech needed before a turn starts (Pipecat's VAD start time)

    def check(self) -> "TurnPolicy":
        from .errors import InputError

        if not 0.05 <= self.pause_s <= 5:
            raise InputError(f"turn.pause_s must be between 0.05 and 5 seconds, not {self.pause_s}")
        if not self.pause_s <= self.long_silence_s <= 30:
            raise InputError(f"turn.long_silence_s must be between pause_s ({self.pause_s}) and 30 seconds, "
                             f"not {self.long_silence_s}")
        if not self.pause_s <= self.medium_silence_s <= self.long_silence_s:
            raise InputError(f"turn.medium_silence_s must be between pause_s ({self.pause_s}) and long_silence_s "
                             f"({self.long_silence_s}), not {self.medium_silence_s}")
        for name in ("threshold", "medium_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"turn.{name} must be between 0 and 1, not {getattr(self, name)}")
        if not 0 < self.vad_threshold < 1:
            raise InputError(f"turn.vad_threshold must be between 0 and 1, not {self.vad_threshold}")
        return self


def _analyzer_class():
    from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    class SmartTurn(LocalSmartTurnAnalyzerV3):
        """smart-turn v3.2 with voxa's threshold (Pipecat's is fixed at 0.5) and the medium-silence
        tier: :meth:`heard` gives it the recogniser's final text."""

        def __init__(self, *, threshold: float = 0.5, medium_ms: float | None = None,
                     medium_threshold: float = 0.1, **kw):
            super().__init__(**kw)
            self.threshold = threshold
            self.medium_ms = medium_ms  # silence after Silero's stop (which already waited pause_s)
            self.medium_threshold = medium_threshold
            self.sentence_done = False
            self.score = 0.0

        def heard(self, text: str) -> None:
            self.sentence_done = text.rstrip().rstrip('"\')').endswith((".", "?", "!"))

        def _predict_endpoint(self, audio_array: np.ndarray) -> dict:
            result = super()._predict_endpoint(audio_array)
            self.score = float(result["probability"])
            result["prediction"] = int(result["probability"] >= self.threshold)
            return result

        def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
            if is_speech:  # the person goes on: the last text and score no longer describe the end
                self.sentence_done, self.score = False, 0.0
            state = super().append_audio(buffer, is_speech)
            if (state == EndOfTurnState.INCOMPLETE and not is_speech and self._speech_triggered
                    and self.medium_ms is not None and self._silence_ms >= self.medium_ms
                    and self.sentence_done and self.score >= self.medium_threshold):
                state = EndOfTurnState.COMPLETE
                self._clear(state)
            return state

        def _clear(self, turn_state):
            super()._clear(turn_state)
            if turn_state == EndOfTurnState.COMPLETE:
                self.sentence_done, self.score = False, 0.0

        def retune(self, policy: "TurnPolicy") -> None:
            """Another policy from now on (a running session's settings changed)."""
            self.threshold, self.medium_threshold = policy.threshold, policy.medium_threshold
            self.medium_ms = (policy.medium_silence_s - policy.pause_s) * 1000.0
            self._params.stop_secs = policy.long_silence_s - policy.pause_s
            self._stop_ms = self._params.stop_secs * 1000

    return SmartTurn


def analyzer(policy: TurnPolicy | None = None):
    """A smart-turn analyzer (one per session: it buffers that session's audio)."""
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

    policy = policy or TurnPolicy()
    return _analyzer_class()(threshold=policy.threshold,
                             params=SmartTurnParams(stop_secs=policy.long_silence_s - policy.pause_s),
                             medium_ms=(policy.medium_silence_s - policy.pause_s) * 1000.0,
                             medium_threshold=policy.medium_threshold)


def stop_strategy(policy: TurnPolicy | None = None, turn_analyzer=None):
    """Pipecat's smart-turn stop strategy on :func:`analyzer` (or the one given), passing it the
    recogniser's finals."""
    from pipecat.frames.frames import TranscriptionFrame
    from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

    class Stop(TurnAnalyzerUserTurnStopStrategy):
        async def process_frame(self, frame):
            if isinstance(frame, TranscriptionFrame):
                self._turn_analyzer.heard(frame.text)
            return await super().process_frame(frame)

    return Stop(turn_analyzer=turn_analyzer or analyzer(policy))


def retune(vad, turn_analyzer, policy: TurnPolicy) -> None:
    """Apply ``policy`` to a running session's Silero (:func:`vad_analyzer`) and smart-turn
    analyzer (:func:`analyzer`): the OpenAI Realtime API changes turn detection mid-session."""
    from pipecat.audio.vad.vad_analyzer import VADParams

    params = VADParams(confidence=policy.vad_threshold, start_secs=policy.start_s, stop_secs=policy.pause_s,
                       min_volume=0.0)
    if vad.sample_rate:
        vad.set_params(params)
    else:  # not started: set_sample_rate applies them
        vad._params = params
    turn_analyzer.retune(policy)


def vad_analyzer(policy: TurnPolicy | None = None):
    """Pipecat's Silero VAD (its bundled ONNX, onnxruntime only) with the policy's timings."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    class _Silero(SileroVADAnalyzer):
        @property
        def hearing_speech(self) -> bool:
            """Speech in the last window (not the silence that runs out a stop)."""
            return self._vad_state in (VADState.STARTING, VADState.SPEAKING)

    policy = policy or TurnPolicy()
    return _Silero(params=VADParams(confidence=policy.vad_threshold, start_secs=policy.start_s,
                                    stop_secs=policy.pause_s, min_volume=0.0))


def strategies(policy: TurnPolicy | None = None):
    """The policy as Pipecat ``UserTurnStrategies``: a turn starts on speech (or a transcript),
    and stops when the smart-turn analyzer says so and the recogniser's final is in."""
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    return UserTurnStrategies(stop=[stop_strategy(policy)])


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

"""Events as the JSON messages of Deepgram's live API (``/v1/listen``), which voxa speaks, so the
article's StreamingASR client works by changing its URL (fixed to run with today's
websockets: examples/streaming_asr.py)."""

from __future__ import annotations

from ..types import SpeechStarted, UtteranceEnd, WakeDetection
from .recognizer import Event

_PUNCT = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~¿¡“”‘’«»。，、！？：；"


def message(event: Event, *, request_id: str = "", model: str = "") -> dict:
    """An event as the JSON message of Deepgram's live API (``/v1/listen``), which voxa speaks."""
    if isinstance(event, SpeechStarted):
        return {"type": "SpeechStarted", "channel": [0, 1], "timestamp": event.timestamp}
    if isinstance(event, WakeDetection):  # voxa's own (wake=...): Deepgram has no wake words
        return {"type": "WakeWord", "channel": [0, 1], "word": event.word, "phrase": event.phrase,
                "timestamp": event.time, "probability": event.probability}
    if isinstance(event, UtteranceEnd):
        return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": event.last_word_end}
    words = [{"word": w.word.strip().lower().strip(_PUNCT) or w.word.strip(), "start": w.start, "end": w.end,
              "confidence": w.probability, "punctuated_word": w.word.strip()}
             | ({"speaker": int(w.speaker.rsplit("_", 1)[-1])} if w.speaker else {}) for w in event.words]
    confidence = round(sum(w.probability for w in event.words) / len(event.words), 4) if event.words else 0.0
    return {
        "type": "Results", "channel_index": [0, 1], "start": event.start, "duration": event.duration,
        "is_final": event.is_final, "speech_final": event.speech_final, "from_finalize": event.from_finalize,
        "channel": {"alternatives": [{"transcript": event.text, "confidence": confidence, "words": words}]},
        "metadata": {"request_id": request_id, "model_info": {"name": model, "version": "", "arch": "whisper"}},
    }

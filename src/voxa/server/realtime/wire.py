"""The OpenAI Realtime protocol's pieces that do not depend on a session: audio formats, the
session settings a client sends (GA ``session.update`` and the beta
``transcription_session.update``), event ids and the shapes of server events.

Audio formats: ``audio/pcm`` (16-bit little-endian mono at 24 kHz; the beta ``pcm16``),
``audio/pcmu`` and ``audio/pcma`` (G.711 μ-law / A-law at 8 kHz; the beta ``g711_ulaw`` /
``g711_alaw``), through :func:`voxa.audio.g711_decode` / ``g711_encode``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import itertools
import uuid
from dataclasses import dataclass, field

import numpy as np

from ...audio import from_pcm16, g711_decode, g711_encode, resample
from ...guards import word_key
from ...streaming.recognizer import agreement

FORMATS = {"audio/pcm": ("pcm", 24000), "pcm16": ("pcm", 24000), "audio/pcmu": ("pcmu", 8000),
           "g711_ulaw": ("pcmu", 8000), "audio/pcma": ("pcma", 8000), "g711_alaw": ("pcma", 8000)}
MAX_APPEND_BYTES = 15 * 1024 * 1024 // 4 * 3  # OpenAI's 15 MiB of base64 per append
_ids = itertools.count(1)


class BadEvent(ValueError):
    """A client event that cannot be done; becomes an ``error`` event, and the session goes on."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_value",
                 event_id: str | None = None):
        super().__init__(message)
        self.param, self.code, self.event_id = param, code, event_id


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def event(kind: str, **fields) -> dict:
    return {"type": kind, "event_id": f"event_{next(_ids):08d}", **fields}


def error(message: str, *, code: str = "invalid_value", param: str | None = None,
          event_id: str | None = None, kind: str = "invalid_request_error") -> dict:
    return event("error", error={"type": kind, "code": code, "message": message, "param": param,
                                 "event_id": event_id})


# --------------------------------------------------------------------------- audio
class AudioIn:
    """Base64 audio of one format → 16 kHz float32, with the session's clock in milliseconds."""

    def __init__(self, fmt: str):
        self.kind, self.rate = FORMATS[fmt]
        self.received = 0  # samples of the client's audio so far
        self._odd = b""

    def __call__(self, b64: str) -> np.ndarray:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise BadEvent("audio must be base64", param="audio") from None
        if self.kind == "pcm":
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            x = from_pcm16(data)
        else:
            x = g711_decode(data, "ulaw" if self.kind == "pcmu" else "alaw")
        self.received += x.size
        return resample(x, self.rate, 16000) if x.size else x

    @property
    def ms(self) -> int:
        return int(self.received * 1000 / self.rate)


def audio_out(samples: np.ndarray, rate: int, fmt: str) -> str:
    """float32 at ``rate`` → base64 in the session's output format."""
    kind, out_rate = FORMATS[fmt]
    x = resample(samples, rate, out_rate) if rate != out_rate else samples
    if kind == "pcm":
        from ...audio import to_pcm16

        data = to_pcm16(x)
    else:
        data = g711_encode(x, "ulaw" if kind == "pcmu" else "alaw")
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- settings
@dataclass
class TurnDetection:
    kind: str | None = "server_vad"  # server_vad | semantic_vad | None (the client commits)
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    eagerness: str = "auto"

    def to_dict(self) -> dict | None:
        if self.kind is None:
            return None
        if self.kind == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.eagerness, "create_response": self.create_response,
                    "interrupt_response": self.interrupt_response}
        return {"type": "server_vad", "threshold": self.threshold, "prefix_padding_ms": self.prefix_padding_ms,
                "silence_duration_ms": self.silence_duration_ms, "create_response": self.create_response,
                "interrupt_response": self.interrupt_response}


SEMANTIC_SILENCE_MS = {"high": 300, "auto": 500, "medium": 500, "low": 1000}  # eagerness → pause


@dataclass
class Settings:
    """A session's settings, as the client set them (the parts voxa honours)."""

    type: str = "realtime"  # or "transcription"
    model: str = "whisper-1"  # the transcription model asked for
    language: str | None = None
    prompt: str = ""
    input_format: str = "audio/pcm"
    output_format: str = "audio/pcm"
    turn: TurnDetection = field(default_factory=TurnDetection)
    instructions: str = ""
    voice: str = "alloy"
    include: list[str] = field(default_factory=list)
    tools: list[dict] = field(default_factory=list)  # conversation sessions: the client's function tools
    beta: bool = False  # the client speaks the beta names

    def session(self, session_id: str) -> dict:
        """The session object sent in session.created / session.updated."""
        transcription = {"model": self.model, "language": self.language, "prompt": self.prompt}
        if self.beta:
            return {"id": session_id, "object": "realtime.transcription_session" if self.type == "transcription"
                    else "realtime.session", "input_audio_format": _beta_name(self.input_format),
                    "input_audio_transcription": transcription, "turn_detection": self.turn.to_dict(),
                    "include": self.include, "modalities": ["text"]}
        return {"type": self.type, "id": session_id, "object": "realtime.transcription_session"
                if self.type == "transcription" else "realtime.session", "include": self.include,
                "audio": {"input": {"format": _format_obj(self.input_format), "transcription": transcription,
                                    "turn_detection": self.turn.to_dict(), "noise_reduction": None}}}


def _format_obj(name: str) -> dict:
    kind, rate = FORMATS[name]
    return {"type": {"pcm": "audio/pcm", "pcmu": "audio/pcmu", "pcma": "audio/pcma"}[kind]} | \
        ({"rate": rate} if kind == "pcm" else {})


def _beta_name(name: str) -> str:
    return {"pcm": "pcm16", "pcmu": "g711_ulaw", "pcma": "g711_alaw"}[FORMATS[name][0]]


def _format_name(value, param: str) -> str:
    name = value.get("type") if isinstance(value, dict) else value
    if name not in FORMATS:
        raise BadEvent(f"unsupported audio format {name!r}: use audio/pcm (24 kHz), audio/pcmu or audio/pcma",
                       param=param)
    if isinstance(value, dict) and value.get("rate") not in (None, FORMATS[name][1]):
        raise BadEvent(f"{name} is {FORMATS[name][1]} Hz here, not {value.get('rate')}", param=param + ".rate")
    return name


def _turn(value, param: str) -> TurnDetection:
    if value is None:
        return TurnDetection(kind=None)
    if not isinstance(value, dict) or value.get("type", "server_vad") not in ("server_vad", "semantic_vad"):
        raise BadEvent("turn_detection must be null, server_vad or semantic_vad", param=param)
    t = TurnDetection(kind=value.get("type", "server_vad"))
    checks = {"threshold": (float, 0.0, 1.0), "prefix_padding_ms": (int, 0, 5000),
              "silence_duration_ms": (int, 64, 10000)}
    for key, (kind, lo, hi) in checks.items():
        if value.get(key) is not None:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise BadEvent(f"{key} must be a number from {lo} to {hi}", param=f"{param}.{key}")
            setattr(t, key, kind(v))
    for key in ("create_response", "interrupt_response"):
        if value.get(key) is not None:
            setattr(t, key, bool(value[key]))
    if t.kind == "semantic_vad":
        t.eagerness = value.get("eagerness") or "auto"
        if t.eagerness not in SEMANTIC_SILENCE_MS:
            raise BadEvent("eagerness must be low, medium, high or auto", param=f"{param}.eagerness")
        t.silence_duration_ms = SEMANTIC_SILENCE_MS[t.eagerness]
    return t


def _transcription(s: Settings, value, param: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadEvent("transcription must be an object", param=param)
    if value.get("model"):
        s.model = str(value["model"])
    if "language" in value:
        s.language = (value.get("language") or "").split("-")[0].lower() or None
    if value.get("prompt") is not None:
        s.prompt = str(value["prompt"])[:2000]


def update(s: Settings, session: dict, *, beta: bool) -> None:
    """Apply a session.update's ``session`` (GA shape, or the beta flat one) to ``s``."""
    if not isinstance(session, dict):
        raise BadEvent("session must be an object", param="session")
    s.beta = beta
    if session.get("type") in ("realtime", "transcription"):
        s.type = session["type"]
    audio = session.get("audio")
    if isinstance(audio, dict):
        inp = audio.get("input") or {}
        if "format" in inp:
            s.input_format = _format_name(inp["format"], "session.audio.input.format")
        _transcription(s, inp.get("transcription"), "session.audio.input.transcription")
        if "turn_detection" in inp:
            s.turn = _turn(inp["turn_detection"], "session.audio.input.turn_detection")
        out = audio.get("output") or {}
        if "format" in out:
            s.output_format = _format_name(out["format"], "session.audio.output.format")
        if out.get("voice"):
            s.voice = str(out["voice"])
    if "input_audio_format" in session:
        s.input_format = _format_name(session["input_audio_format"], "session.input_audio_format")
    if "output_audio_format" in session:
        s.output_format = _format_name(session["output_audio_format"], "session.output_audio_format")
    _transcription(s, session.get("input_audio_transcription"), "session.input_audio_transcription")
    if "turn_detection" in session:
        s.turn = _turn(session["turn_detection"], "session.turn_detection")
    if session.get("instructions") is not None:
        s.instructions = str(session["instructions"])[:20000]
    if session.get("voice"):
        s.voice = str(session["voice"])
    if session.get("include") is not None:
        s.include = [str(i) for i in session["include"]][:8]


# --------------------------------------------------------------------------- user items
def settled_text(text: str) -> str:
    """An item's transcript so far, as its deltas send it: without the punctuation after the last
    word (it may still change), and starting with a capital, as the completed transcript of a
    turn does (an interim of the turn's first words alone often starts in lower case)."""
    text = text.rstrip(".,;:!?…")
    return text[:1].upper() + text[1:]


# Which words of a user item's interims go out as deltas (``Settled``). In an utterance's first 1.5 s
# interims come as often as the decoder allows (~0.1 s apart, voxa.streaming.recognizer), so the
# first words can go out once two of them agree; but two interims that close often share a guess at
# a word cut by the end of the audio ("I will" for "I really"). Measured over 20 LibriSpeech
# utterances at real-time pace, four runs (a replay of recorded interims): an agreed word must end
# SETTLE_S before the interim's audio, and once an item has deltas its next words must agree with
# an interim at least AGAIN_S older. First delta 427-520 ms p50 after the onset (635 ms with
# interims 0.2-0.3 s apart and LocalAgreement-2 alone); items whose deltas are a prefix of their
# completed words 13/23 (15-16/23 before; 10-11/23 without the two rules).
SETTLE_S = 0.1
AGAIN_S = 0.2


class Settled:
    """The words of a user item's interims that can go out as deltas (see SETTLE_S above). Call
    with each interim (a :class:`voxa.types.StreamResult`); ``clear`` after each final, whose
    words are settled by definition and after which interims cover only the audio that follows."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, list]] = []  # recent interims: audio end, words

    def clear(self) -> None:
        self.seen = []

    def __call__(self, result, *, extending: bool) -> str:
        """The text of the leading words of ``result`` that are settled; ``extending``: the item
        has deltas."""
        words, end = result.words, result.start + result.duration
        gap = AGAIN_S if extending else 0.03  # (not an interim of the same audio: no new evidence)
        before = next((w for e, w in reversed(self.seen) if e <= end - gap + 1e-6), [])
        self.seen = [(e, w) for e, w in self.seen if e > end - 1.0] + [(end, words)]
        n = agreement(before, words, before=end - SETTLE_S)
        return "".join(w.word for w in words[:n]).strip()


def delta_after(sent: str, text: str) -> str:
    """The delta that follows ``sent`` (an item's deltas so far) for its newer text ``text``: the
    rest of ``text`` when it goes on from ``sent``; when it does not (an interim or the final heard
    a word otherwise, or punctuated it otherwise), the words of ``text`` after the point where
    ``sent``'s words end in it (aligned with difflib, a word heard otherwise standing for itself),
    so the deltas go on as a live caption instead of stopping at the first changed word. The
    completed transcript is the authority. Over 20 LibriSpeech items at real-time pace, 85% of
    the completed words came as deltas before it this way, 72% without."""
    if text.startswith(sent):
        return text[len(sent):]
    old, new = [word_key(w) for w in sent.split()], text.split()
    j = 0  # where the last of ``old`` is, in ``new``
    matcher = difflib.SequenceMatcher(None, old, [word_key(w) for w in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "insert" and i1 < len(old)):
            j = j2
        elif tag == "replace":
            j = min(j2, j1 + i2 - i1)
        elif tag == "delete":
            j = j1
    return " " + " ".join(new[j:]) if j < len(new) else ""


def user_item_done(item_id: str, previous: str | None, transcript: str, sent: str, seconds: float, *,
                   beta: bool, deltas: bool = True) -> tuple[dict, list[dict]]:
    """A user's spoken item once its turn is over: the item, and the events that say so
    (committed, the item added, the rest of the transcript as a last delta after ``sent``, the
    completed transcript, and on the GA protocol the item done)."""
    item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}
    events = [event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
              event("conversation.item.created" if beta else "conversation.item.added", item=copy.deepcopy(item),
                    previous_item_id=previous)]
    rest = delta_after(sent, transcript) if deltas else ""
    if rest:
        events.append(event("conversation.item.input_audio_transcription.delta", item_id=item_id,
                            content_index=0, delta=rest))
    events.append(event("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0,
                        transcript=transcript, usage={"type": "duration", "seconds": round(max(seconds, 0.0), 3)}))
    item["content"][0]["transcript"] = transcript
    if not beta:
        events.append(event("conversation.item.done", item=copy.deepcopy(item), previous_item_id=previous))
    return item, events

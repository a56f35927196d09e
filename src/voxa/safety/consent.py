"""Consent to clone a voice: recorded, checked, scoped, expiring and revocable.

A speaker reads a statement aloud. ``add`` checks the words (Whisper transcribes the recording;
word error rate against the statement at most ``MAX_STATEMENT_WER``) and keeps the recording
and its voiceprint (Resemblyzer, as for diarization). ``check`` is the one gate every clone
goes through: it refuses, with the reason, when the consent is missing, revoked, expired or
out of scope, or when the reference audio to be cloned is not the consenting speaker's voice
(cosine similarity of voiceprints below ``MATCH_THRESHOLD``). Every decision is in the audit log.

``MATCH_THRESHOLD`` = 0.75 was calibrated on the shared LibriSpeech speakers (7 speakers, 64
utterances; ``benchmarks/consent.py``): equal error rate 0.7% at 0.72; at 0.75 two impostor
pairs in 1,740 pass (FAR 0.1%) and 1.8% of genuine pairs are refused. A false accept is the
costly error for a consent gate, hence the stricter threshold than the EER point. Needs the ``diarize`` and
``eval`` extras (the speaker encoder and the WER scorer): ``pip install 'voxa[consent]'``.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, update

from .. import audio as audio_io
from ..errors import ConsentError, InputError
from . import audit, store

STATEMENT = "I, {speaker}, agree that voxa may make a synthetic copy of my voice."
MAX_STATEMENT_WER = 0.25
MATCH_THRESHOLD = 0.75
MIN_SPEECH_S = 2.0


@dataclass
class Consent:
    id: str
    speaker: str
    statement: str
    heard: str
    scope: str
    created: float
    expires: float | None
    revoked: float | None

    def state(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.revoked:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"

    def covers(self, use: str) -> bool:
        uses = {u.strip() for u in self.scope.split(",")}
        return "*" in uses or use in uses

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"state": self.state()}


def _voiceprint(pcm: np.ndarray, what: str) -> np.ndarray:
    from ..diarization import voiceprint

    vec, speech = voiceprint(pcm)
    if speech < MIN_SPEECH_S:
        raise ConsentError(f"the {what} holds {speech:.1f} s of speech; at least {MIN_SPEECH_S:g} s are needed")
    return vec


def add(speaker: str, recording, *, statement: str | None = None, scope: str = "clone",
        expires: float | None = None, model: str | None = None, actor: str | None = None,
        origin: str = "api") -> Consent:
    """Record a speaker's consent from a recording of them reading ``statement`` (default:
    ``STATEMENT`` with their name). Raises ConsentError if the words or the speech fall short."""
    from ..asr import load_model
    from ..evaluate import wer

    speaker = speaker.strip()
    if not speaker:
        raise InputError("the speaker's name is empty")
    statement = (statement or STATEMENT.format(speaker=speaker)).strip()
    if expires is not None and expires <= time.time():
        raise InputError("the expiry is in the past")
    pcm = audio_io.decode(recording)
    heard = load_model(model).transcribe(pcm).text.strip()
    err = wer([statement], [heard])
    if err > MAX_STATEMENT_WER:
        detail = {"speaker": speaker, "reason": "statement", "heard": heard, "wer": round(err, 3)}
        audit.append("refusal", actor=actor, origin=origin, detail=detail)
        raise ConsentError(f"the recording does not say the statement (word error rate {err:.0%}); heard: {heard!r}")
    vec = _voiceprint(pcm, "consent recording")
    c = Consent(uuid.uuid4().hex[:16], speaker, statement, heard, scope, time.time(), expires, None)
    data = _original(recording) or audio_io.encode(pcm, audio_io.SAMPLE_RATE, "flac")
    with store.engine().begin() as conn:
        conn.execute(insert(store.consent_table).values(**c.__dict__, recording=data,
                                                          embedding=vec.astype(np.float32).tobytes()))
    audit.append("consent-add", actor=actor, origin=origin, consent_id=c.id,
                 detail={"speaker": speaker, "scope": scope, "expires": expires, "wer": round(err, 3)})
    return c


def _original(recording) -> bytes | None:
    """The consent recording's own bytes, kept as evidence (None for an array)."""
    if isinstance(recording, (bytes, bytearray)):
        return bytes(recording)
    if isinstance(recording, (str, os.PathLike)):
        return Path(recording).read_bytes()
    return None


def _row(consent_id: str):
    with store.engine().connect() as conn:
        return conn.execute(select(store.consent_table).where(store.consent_table.c.id == consent_id)).first()


def _consent(row) -> Consent:
    return Consent(**{k: getattr(row, k) for k in Consent.__dataclass_fields__})


def get(consent_id: str) -> Consent | None:
    row = _row(consent_id)
    return _consent(row) if row else None


def all_consents() -> list[Consent]:
    with store.engine().connect() as conn:
        rows = conn.execute(select(store.consent_table).order_by(store.consent_table.c.created)).all()
    return [_consent(r) for r in rows]


def revoke(consent_id: str, *, actor: str | None = None, origin: str = "api") -> Consent:
    c = get(consent_id)
    if c is None:
        raise InputError(f"no consent with id {consent_id!r}")
    if not c.revoked:
        c.revoked = time.time()
        with store.engine().begin() as conn:
            conn.execute(update(store.consent_table).where(store.consent_table.c.id == consent_id)
                         .values(revoked=c.revoked))
        audit.append("consent-revoke", actor=actor, origin=origin, consent_id=consent_id)
    return c


MAX_REFERENCE_S = 60.0  # a cloning reference is seconds long; longer ones are refused while decoding


@dataclass
class Match:
    consent: Consent
    similarity: float
    reference: np.ndarray | None = None  # the reference audio, decoded (16 kHz mono)


def check(consent_id: str | None, reference, *, use: str = "clone", actor: str | None = None,
          origin: str = "api", max_reference_s: float | None = MAX_REFERENCE_S) -> Match:
    """The cloning gate: the consent must exist, be active and cover ``use``, and ``reference``
    (the audio to clone) must be the consenting speaker's voice. A refusal raises ConsentError
    and is written to the audit log with its reason. The consent record is checked before any
    audio is decoded, and a reference over ``max_reference_s`` fails while it is decoded
    (:class:`voxa.errors.TooLong`)."""

    def refuse(reason: str, message: str, **detail):
        audit.append("refusal", actor=actor, origin=origin, consent_id=consent_id,
                     detail={"use": use, "reason": reason} | detail)
        raise ConsentError(message)

    if not consent_id:
        refuse("missing", "cloning a voice needs the speaker's consent: give a consent id (voxa consent add)")
    row = _row(consent_id)
    if row is None:
        refuse("unknown", f"no consent with id {consent_id!r}")
    c = _consent(row)
    state = c.state()
    if state != "active":
        refuse(state, f"consent {consent_id} for {c.speaker} is {state}")
    if not c.covers(use):
        refuse("scope", f"consent {consent_id} covers {c.scope!r}, not {use!r}")
    pcm = audio_io.decode(reference, max_seconds=max_reference_s)
    try:
        vec = _voiceprint(pcm, "reference audio")
    except ConsentError as e:
        refuse("reference", str(e))
    sim = float(np.frombuffer(row.embedding, np.float32) @ vec)
    if sim < MATCH_THRESHOLD:
        refuse("voice", f"the reference voice does not match {c.speaker}, who consented "
               f"(similarity {sim:.2f} < {MATCH_THRESHOLD})", similarity=round(sim, 3))
    return Match(c, sim, pcm)

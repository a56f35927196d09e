"""Reading a watermark back: is this audio voxa's, and which synthesis made it?

``detect(source)`` decodes any audio (a path, bytes, a file object or a 16 kHz array), looks
for voxa's mark (:mod:`voxa.safety.watermark`) and, when one is found, fetches the audit
record its payload points to. ``voxa watermark detect FILE`` and
``POST /v1/audio/watermark/detect`` are shells over it. With AudioSeal (16-bit payloads) the
record is the latest whose number matches in its low 16 bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import audio as audio_io
from . import audit, marks, watermark

BLOCK_S = watermark.T * 3 * watermark.HOP_S  # one whole payload block (4.32 s)


@dataclass
class Detection:
    present: bool
    confidence: float  # z-score of the decoded pattern; the sync threshold is 4
    payload: int | None
    duration: float
    watermark: str = watermark.NAME
    record: dict | None = None  # the audit record the payload points to (None: not in this log)
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


MAX_DETECT_S = 3600.0  # longest audio `voxa watermark detect` reads (the server's cap is lower)


def detect(source, *, max_seconds: float | None = MAX_DETECT_S) -> Detection:
    """Decode ``source``, look for the configured watermark (``VOXA_WATERMARK``), and fetch the
    audit record its payload points to. voxa's detector reads the audio as it is decoded and
    keeps it at 8 kHz (about 2 MB a minute); audio over ``max_seconds`` fails while decoding
    (:class:`voxa.errors.TooLong`)."""
    name = marks.prepare()
    seen = 0

    def blocks():
        nonlocal seen
        for block in audio_io.stream(source, block_seconds=10.0, max_seconds=max_seconds):
            seen += block.size
            yield block

    r = marks.detect(blocks())
    duration = round(seen / audio_io.SAMPLE_RATE, 3)
    if not r.present:
        note = (f"too short to tell: a mark needs at least {BLOCK_S:.2f} s of speech (about 10 s for a "
                "reliable read)" if marks.engine_name() == "voxa" and duration < BLOCK_S else None)
        return Detection(False, round(r.confidence, 2), None, duration, name, note=note)
    rec = audit.find(r.payload, bits=r.bits)
    note = None if rec else "the payload is not in this audit log (made by another voxa installation?)"
    return Detection(True, round(r.confidence, 2), r.payload, duration, r.name or name,
                     record=rec.to_dict() if rec else None, note=note)

"""The audit log: an append-only, hash-chained record of every synthesis and every refusal.

Each record holds the time, who asked (an API key's id or the local user), the engine, voice,
the SHA-256 of the text, the watermark payload (the generation id the audio carries), the
consent id, and details. Records are numbered 1, 2, 3, ... and each one's MAC is
HMAC-SHA256(key, previous MAC + the record's canonical JSON), so ``verify`` finds any edited,
deleted, inserted or reordered record; a signed head (count and last MAC) catches a cut tail.
``voxa audit show`` and ``voxa audit verify`` are the command line.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import hmac
import json
import threading
from dataclasses import asdict, dataclass
from typing import Iterator

from sqlalchemy import insert, select, update

from . import store

GENESIS = "0" * 64
_lock = threading.Lock()  # one appender at a time in this process; the database serialises processes


@dataclass
class Record:
    seq: int
    time: str
    event: str
    actor: str
    origin: str
    engine: str | None = None
    voice: str | None = None
    text_sha256: str | None = None
    payload: int | None = None
    consent_id: str | None = None
    detail: str | None = None
    prev: str = GENESIS
    mac: str = ""

    def body(self) -> bytes:
        d = asdict(self)
        d.pop("mac")
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["detail"] = json.loads(self.detail) if self.detail else None
        return d


@dataclass
class Verdict:
    ok: bool
    records: int
    head: str  # the last MAC: keep a copy elsewhere to anchor the log
    problem: str | None = None  # the first thing found wrong
    seq: int | None = None  # where


def local_actor() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except Exception:  # no login name (containers): still say it was local
        return "user:unknown"


def key_id(api_key: str) -> str:
    """How an API key appears in the log: never the key, a short hash of it."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _mac(key: bytes, prev: str, rec: Record) -> str:
    return hmac.new(key, prev.encode() + rec.body(), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, last: str) -> str:
    return hmac.new(key, f"head:{seq}:{last}".encode(), hashlib.sha256).hexdigest()


def append(event: str, *, actor: str | None = None, origin: str = "api", engine: str | None = None,
           voice: str | None = None, text: str | None = None, marked: bool = False,
           consent_id: str | None = None, detail: dict | None = None) -> Record:
    """Add one record at the end of the chain and return it (with its number and MAC).
    ``marked``: the record is of audio that carries a watermark, whose payload is the record's
    own number (so payloads are unique and point straight at their record)."""
    key = store.audit_key()
    db = store.engine()
    with _lock, db.begin() as conn:
        head = conn.execute(select(store.head_table).where(store.head_table.c.id == 1)
                            .with_for_update()).first()
        seq, prev = (head.seq, head.last) if head else (0, GENESIS)
        rec = Record(seq + 1, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
                     event, actor or local_actor(), origin, engine, voice,
                     text_hash(text) if text is not None else None, seq + 1 if marked else None, consent_id,
                     json.dumps(detail, sort_keys=True) if detail else None, prev)
        rec.mac = _mac(key, prev, rec)
        conn.execute(insert(store.audit_table).values(**asdict(rec)))
        row = {"seq": rec.seq, "last": rec.mac, "mac": _head_mac(key, rec.seq, rec.mac)}
        if head:
            conn.execute(update(store.head_table).where(store.head_table.c.id == 1).values(**row))
        else:
            conn.execute(insert(store.head_table).values(id=1, **row))
    return rec


def records(*, since: int = 0, limit: int | None = None, event: str | None = None) -> Iterator[Record]:
    q = select(store.audit_table).where(store.audit_table.c.seq > since).order_by(store.audit_table.c.seq)
    if event:
        q = q.where(store.audit_table.c.event == event)
    if limit:
        q = q.limit(limit)
    with store.engine().connect() as conn:
        for row in conn.execute(q):
            yield Record(**row._asdict())


def find(payload: int, *, bits: int = 32) -> Record | None:
    """The synthesis record a watermark payload points to. A mark with fewer ``bits`` than the
    record numbers (AudioSeal's 16) matches the latest record with the same low bits."""
    c = store.audit_table.c
    cond = c.payload == payload if bits >= 32 else (c.payload % (1 << bits)) == payload
    with store.engine().connect() as conn:
        row = conn.execute(select(store.audit_table).where(cond).order_by(c.seq.desc()).limit(1)).first()
    return Record(**row._asdict()) if row else None


def verify() -> Verdict:
    """Walk the whole chain: numbering, links, MACs, then the signed head."""
    key = store.audit_key()
    prev, n, expect = GENESIS, 0, 1
    for rec in records():
        if rec.seq != expect:
            what = "missing" if rec.seq > expect else "duplicated or out of order"
            return Verdict(False, n, prev, f"record {expect} is {what} (found {rec.seq} next)", expect)
        if rec.prev != prev:
            return Verdict(False, n, prev, f"record {rec.seq} does not follow record {rec.seq - 1}", rec.seq)
        if not hmac.compare_digest(rec.mac, _mac(key, prev, rec)):
            return Verdict(False, n, prev, f"record {rec.seq} was changed after it was written", rec.seq)
        prev, n, expect = rec.mac, n + 1, expect + 1
    with store.engine().connect() as conn:
        head = conn.execute(select(store.head_table).where(store.head_table.c.id == 1)).first()
    if head is None:
        ok = n == 0
        return Verdict(ok, n, prev, None if ok else "the log's signed head is missing", None)
    if not hmac.compare_digest(head.mac, _head_mac(key, head.seq, head.last)):
        return Verdict(False, n, prev, "the log's head was changed", None)
    if head.seq != n or head.last != prev:
        return Verdict(False, n, prev, f"the log ends at record {n} but was signed at record {head.seq}", n + 1)
    return Verdict(True, n, prev)

"""Where the audit log and the consent registry live: one SQLAlchemy database.

Default: SQLite at ``$VOXA_HOME/safety.db`` (or the user data folder), opened by
:func:`voxa.database.open_database` (WAL, so an append costs well under a millisecond). ``VOXA_SAFETY_DB`` takes any SQLAlchemy URL, such as
``postgresql+psycopg://user@host/voxa``. SQLAlchemy is used because it gives one schema and one
transaction model for SQLite and PostgreSQL alike.

The audit log is signed with HMAC-SHA256 under a key kept outside the database:
``VOXA_AUDIT_KEY`` (hex), or ``audit.key`` next to the SQLite file (created on first use,
readable by its owner only). Whoever can write the database but not read the key cannot forge
a record that ``voxa audit verify`` accepts.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from sqlalchemy import BigInteger, Column, Float, Integer, LargeBinary, MetaData, String, Table, Text
from sqlalchemy.engine import Engine

from ..database import open_database

metadata = MetaData()

audit_table = Table(
    "voxa_audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("event", String(32), nullable=False),  # synthesis, refusal, consent-add, consent-revoke
    Column("actor", String(128), nullable=False),  # API key id or local user
    Column("origin", String(16), nullable=False),  # api, cli, server, agent
    Column("engine", String(64)),
    Column("voice", String(128)),
    Column("text_sha256", String(64)),
    Column("payload", BigInteger, unique=True),  # the watermark's generation id
    Column("consent_id", String(64)),
    Column("detail", Text),  # JSON: reason of a refusal, sample rate, settings
    Column("prev", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)

# one row: how many records there are and the last one's MAC, itself signed (catches a cut tail)
head_table = Table(
    "voxa_audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("last", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)

consent_table = Table(
    "voxa_consent", metadata,
    Column("id", String(64), primary_key=True),
    Column("speaker", String(128), nullable=False),
    Column("statement", Text, nullable=False),
    Column("heard", Text, nullable=False),  # what the recognizer heard in the recording
    Column("recording", LargeBinary, nullable=False),  # the consent recording as given (encoded)
    Column("embedding", LargeBinary, nullable=False),  # float32 speaker embedding of the recording
    Column("scope", String(256), nullable=False),  # comma-separated uses, e.g. "clone" or "*"
    Column("created", Float, nullable=False),
    Column("expires", Float),  # unix time; None: never
    Column("revoked", Float),  # unix time of revocation
)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def data_dir() -> Path:
    env = os.environ.get("VOXA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("voxa"))


def url() -> str:
    return os.environ.get("VOXA_SAFETY_DB") or f"sqlite:///{data_dir() / 'safety.db'}"


def engine() -> Engine:
    """The database of ``url()``, created with its tables on first use (one per URL and process).
    Without it there is no audit, so no synthesis: opening it fails with one clear error."""
    u = url()
    with _lock:
        if u not in _engines:
            _engines[u] = open_database(u, metadata, f"the safety database {u} (audit log, consent)")
        return _engines[u]


def audit_key() -> bytes:
    env = os.environ.get("VOXA_AUDIT_KEY")
    if env:
        try:
            return bytes.fromhex(env)
        except ValueError:
            from ..errors import InputError

            raise InputError("VOXA_AUDIT_KEY must be hex") from None
    path = data_dir() / "audit.key"
    if not path.exists():  # written whole, then linked into place: two first uses agree on one key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".audit.key.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())

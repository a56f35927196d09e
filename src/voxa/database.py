"""The one way voxa opens a database (the audit log and consent registry, a batch's job store).

SQLAlchemy, so any URL works (PostgreSQL for a shared store); SQLite files are the default.
SQLite gets WAL (an append costs well under a millisecond), a 10 s busy timeout, and BEGIN
IMMEDIATE for every transaction, so writers from several processes queue up instead of racing
(SQLAlchemy's documented pysqlite recipe). Failing to open is one clear OutputError.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import OutputError


def open_database(url: str, metadata: MetaData, what: str) -> Engine:
    """An engine for ``url`` with ``metadata``'s tables created; ``what`` names it in errors."""
    try:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url)
        if eng.dialect.name == "sqlite":
            _sqlite(eng)
        metadata.create_all(eng)
    except (OSError, SQLAlchemyError) as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise OutputError(f"cannot open {what}: {reason}") from None
    return eng


def _sqlite(eng: Engine) -> None:
    @event.listens_for(eng, "connect")
    def _connect(conn, _):
        conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(eng, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

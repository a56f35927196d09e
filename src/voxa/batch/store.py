"""The job store: one row per input, so a batch survives a crash or ``kill -9``.

SQLAlchemy, so the store is SQLite by default (``OUT/.voxa-batch.db``) or any URL given with
``--db`` (PostgreSQL for a shared store). Only the driver process writes it. States: pending,
running, done, failed. A job goes to ``running`` when it is handed to a worker, and to ``done``
only after its output files are in place (each written to a temporary name and renamed), so a
crash at any moment leaves jobs that are either done (outputs complete) or will be run again.
Jobs are grouped (``group``) when the batch is created and a group is decoded together, so a
resumed run packs audio exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, insert, select, update

from ..database import open_database
from ..errors import InputError

metadata = MetaData()
meta_table = Table("voxa_batch_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))
jobs_table = Table(
    "voxa_batch_jobs", metadata,
    Column("id", Integer, primary_key=True),  # the input's place in the sorted list
    Column("path", Text, nullable=False, unique=True),
    Column("stem", Text, nullable=False),
    Column("grp", Integer, nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("audio_s", Float),  # from the header at creation; the decoded length once done
    Column("updated", Float),
)

DB_NAME = ".voxa-batch.db"


@dataclass
class Job:
    id: int
    path: str
    stem: str
    grp: int
    state: str
    attempts: int
    error: str | None
    audio_s: float | None


class JobStore:
    def __init__(self, url: str):
        self.db = open_database(url, metadata, f"the batch store {url}")

    @classmethod
    def for_dir(cls, out: Path, url: str | None = None) -> "JobStore":
        return cls(url or f"sqlite:///{Path(out).resolve() / DB_NAME}")

    # ------------------------------------------------------------------ creating and resuming
    def settings(self) -> dict | None:
        with self.db.connect() as c:
            row = c.execute(select(meta_table.c.value).where(meta_table.c.key == "settings")).first()
        return json.loads(row[0]) if row else None

    def claim(self, settings: dict) -> None:
        """Record the batch's settings the first time; later runs must ask for the same ones."""
        old = self.settings()
        if old is not None and old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputError(f"this output folder holds a batch made with other settings ({', '.join(diff)}); "
                             "use another --out, or the same options to resume it")
        if old is None:
            with self.db.begin() as c:
                c.execute(insert(meta_table).values(key="settings", value=json.dumps(settings, sort_keys=True)))

    def add(self, inputs: list[tuple[Path, str, float | None]], group_size: int) -> None:
        """Add inputs not yet known (those already known are kept as they are), numbered on
        from the last and grouped ``group_size`` at a time."""
        with self.db.begin() as c:
            known = {r[0] for r in c.execute(select(jobs_table.c.path))}
            start = c.execute(select(func.coalesce(func.max(jobs_table.c.id), -1))).scalar() + 1
            rows = [(str(p), stem, d) for p, stem, d in inputs if str(p) not in known]
            now = time.time()
            if rows:
                c.execute(insert(jobs_table), [
                    {"id": start + n, "path": path, "stem": stem, "grp": (start + n) // group_size, "state": "pending",
                     "attempts": 0, "audio_s": dur, "updated": now} for n, (path, stem, dur) in enumerate(rows)])

    def recover(self) -> int:
        """Jobs left running by a crashed run go back to pending (not the file's fault: no attempt counted)."""
        with self.db.begin() as c:
            return c.execute(update(jobs_table).where(jobs_table.c.state == "running")
                             .values(state="pending", updated=time.time())).rowcount

    def retry_failed(self, max_attempts: int) -> int:
        """Failed jobs with attempts left go back to pending."""
        with self.db.begin() as c:
            return c.execute(update(jobs_table).where((jobs_table.c.state == "failed")
                                                      & (jobs_table.c.attempts < max_attempts))
                             .values(state="pending", updated=time.time())).rowcount

    def paths(self) -> set[str]:
        with self.db.connect() as c:
            return {r[0] for r in c.execute(select(jobs_table.c.path))}

    # ------------------------------------------------------------------ running
    def pending_groups(self) -> list[list[Job]]:
        with self.db.connect() as c:
            rows = c.execute(select(jobs_table).where(jobs_table.c.state == "pending").order_by(jobs_table.c.id)).all()
        groups: dict[int, list[Job]] = {}
        for r in rows:
            groups.setdefault(r.grp, []).append(Job(**{k: getattr(r, k) for k in Job.__dataclass_fields__}))
        return list(groups.values())

    def start(self, jobs: list[Job]) -> None:
        self._set([j.id for j in jobs], state="running")

    def done(self, job: Job, audio_s: float) -> None:
        with self.db.begin() as c:
            c.execute(update(jobs_table).where(jobs_table.c.id == job.id)
                      .values(state="done", error=None, audio_s=audio_s, attempts=jobs_table.c.attempts + 1,
                              updated=time.time()))

    def failed(self, job: Job, reason: str) -> int:
        """Record a failure; returns the job's attempts so far."""
        with self.db.begin() as c:
            c.execute(update(jobs_table).where(jobs_table.c.id == job.id)
                      .values(state="failed", error=reason, attempts=jobs_table.c.attempts + 1, updated=time.time()))
            return c.execute(select(jobs_table.c.attempts).where(jobs_table.c.id == job.id)).scalar()

    def _set(self, ids: list[int], **values) -> None:
        with self.db.begin() as c:
            c.execute(update(jobs_table).where(jobs_table.c.id.in_(ids)).values(updated=time.time(), **values))

    # ------------------------------------------------------------------ reporting
    def jobs(self) -> list[Job]:
        with self.db.connect() as c:
            rows = c.execute(select(jobs_table).order_by(jobs_table.c.id)).all()
        return [Job(**{k: getattr(r, k) for k in Job.__dataclass_fields__}) for r in rows]

    def summary(self) -> dict:
        jobs = self.jobs()
        states = Counter(j.state for j in jobs)
        return {"inputs": len(jobs), **{s: states.get(s, 0) for s in ("done", "pending", "running", "failed")},
                "audio_hours_done": sum(j.audio_s or 0 for j in jobs if j.state == "done") / 3600,
                "audio_hours_total": sum(j.audio_s or 0 for j in jobs) / 3600,
                "failures": [{"path": j.path, "attempts": j.attempts, "error": j.error} for j in jobs
                             if j.state == "failed"]}

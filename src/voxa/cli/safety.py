"""``voxa audit show|verify`` and ``voxa consent add|verify|revoke|list`` (shells over voxa.safety)."""

from __future__ import annotations

import json
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import app, fail, out

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident log of every synthesis and refusal.")
consent_app = typer.Typer(no_args_is_help=True, help="Speakers' consent to clone their voice.")
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")


@audit_app.command("show")
def audit_show(
    since: int = typer.Option(0, "--since", min=0, help="Only records after this number."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many records."),
    event: Optional[str] = typer.Option(None, "--event", help="synthesis, refusal, consent-add or consent-revoke."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
):
    """List audit records, oldest first."""
    from ..safety import audit

    rows = list(audit.records(since=since, limit=limit, event=event))
    if as_json:
        for r in rows:
            out.print(json.dumps(r.to_dict()), markup=False)
        return
    table = Table("seq", "time (UTC)", "event", "actor", "origin", "voice", "payload", "consent", "detail")
    for r in rows:
        detail = r.detail or ""
        table.add_row(str(r.seq), r.time[:19].replace("T", " "), r.event, r.actor, r.origin, r.voice or "",
                      str(r.payload or ""), r.consent_id or "", detail if len(detail) < 60 else detail[:57] + "...")
    Console(width=max(out.width, 160), highlight=False).print(table)


@audit_app.command("verify")
def audit_verify():
    """Check the whole chain; exit 1 and name the first bad record if anything was edited,
    deleted, inserted or reordered."""
    from ..safety import audit

    v = audit.verify()
    if not v.ok:
        fail(f"audit log is not intact: {v.problem}", 1)
    out.print(f"audit log intact: {v.records} record{'s' * (v.records != 1)}; head {v.head}", markup=False)


def _expiry(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    units = {"d": 86400, "h": 3600}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() + int(text[:-1]) * units[text[-1]]
    fail(f"--expires {text!r}: give a number of days or hours, such as 30d or 12h")


@consent_app.command("add")
def consent_add(
    speaker: str = typer.Option(..., "--speaker", help="The name of the person consenting."),
    recording: str = typer.Option(..., "--recording", help="Them reading the statement aloud."),
    statement: Optional[str] = typer.Option(None, "--statement", help="What they read (default: voxa's statement "
                                            "with their name; see voxa consent statement)."),
    scope: str = typer.Option("clone", "--scope", help="Comma-separated uses this consent covers."),
    expires: Optional[str] = typer.Option(None, "--expires", help="Lifetime such as 30d or 12h (default: none)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Whisper model that checks the words."),
):
    """Record consent: the words are checked against the statement and the voice is enrolled."""
    from ..safety import consent

    c = consent.add(speaker, recording, statement=statement, scope=scope, expires=_expiry(expires),
                    model=model, origin="cli")
    out.print(f"consent {c.id} recorded for {c.speaker} (scope {c.scope}); heard: {c.heard}", markup=False)


@consent_app.command("statement")
def consent_statement(speaker: str = typer.Argument(..., help="The name of the person consenting.")):
    """Print the default statement a speaker reads for their consent recording."""
    from ..safety import consent

    out.print(consent.STATEMENT.format(speaker=speaker), markup=False)


@consent_app.command("verify")
def consent_verify(
    consent_id: str = typer.Argument(..., help="The consent's id."),
    reference: str = typer.Option(..., "--reference", help="The audio that would be cloned."),
    use: str = typer.Option("clone", "--use", help="The use to check against the consent's scope."),
):
    """Would cloning REFERENCE be allowed under this consent? Exit 0 if so, 1 with the reason if not."""
    from ..errors import ConsentError
    from ..safety import consent

    try:
        m = consent.check(consent_id, reference, use=use, origin="cli")
    except ConsentError as e:
        fail(f"refused: {e}", 1)
    out.print(f"allowed: the reference matches {m.consent.speaker} (similarity {m.similarity:.2f})", markup=False)


@consent_app.command("revoke")
def consent_revoke(consent_id: str = typer.Argument(..., help="The consent's id.")):
    """Withdraw a consent; cloning under it is refused from now on."""
    from ..safety import consent

    c = consent.revoke(consent_id, origin="cli")
    out.print(f"consent {c.id} for {c.speaker} revoked", markup=False)


@consent_app.command("list")
def consent_list(as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")):
    """All consents with their state (active, expired, revoked)."""
    from ..safety import consent

    rows = consent.all_consents()
    if as_json:
        for c in rows:
            out.print(json.dumps(c.to_dict()), markup=False)
        return
    table = Table("id", "speaker", "scope", "state", "created (UTC)", "expires (UTC)")
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else ""  # noqa: E731
    for c in rows:
        table.add_row(c.id, c.speaker, c.scope, c.state(), stamp(c.created), stamp(c.expires))
    out.print(table)

"""Responsible synthesis (voxa.safety): the hash-chained audit log against every kind of
tampering, and the consent gate with real LibriSpeech recordings of two different speakers."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from voxa.errors import ConsentError, InputError
from voxa.safety import audit, store

from .test_cli import voxa_cli


@pytest.fixture()
def db(tmp_path, monkeypatch):
    """A private safety database and audit key for one test."""
    path = tmp_path / "safety.db"
    monkeypatch.setenv("VOXA_SAFETY_DB", f"sqlite:///{path}")
    monkeypatch.setenv("VOXA_AUDIT_KEY", "ab" * 32)
    return path


def _log(n=5):
    for i in range(n):
        audit.append("synthesis", engine="hibari", voice="heart", text=f"sentence {i}", marked=True)


def _sql(path, *statements):
    conn = sqlite3.connect(path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


# ------------------------------------------------------------------------------ audit log
def test_records_chain_and_payloads_point_at_their_record(db):
    _log(3)
    refusal = audit.append("refusal", consent_id="c1", detail={"reason": "voice"})
    recs = list(audit.records())
    assert [r.seq for r in recs] == [1, 2, 3, 4]
    assert [r.payload for r in recs] == [1, 2, 3, None] and refusal.payload is None
    assert all(b.prev == a.mac for a, b in zip(recs, recs[1:]))
    assert audit.find(2).text_sha256 == audit.text_hash("sentence 1")
    assert recs[0].actor.startswith("user:") and recs[3].to_dict()["detail"] == {"reason": "voice"}
    v = audit.verify()
    assert v.ok and v.records == 4 and v.head == recs[-1].mac


@pytest.mark.parametrize("attack, problem", [
    (["UPDATE voxa_audit SET voice='someone' WHERE seq=2"], "record 2 was changed"),
    (["UPDATE voxa_audit SET text_sha256='00' WHERE seq=5"], "record 5 was changed"),
    (["DELETE FROM voxa_audit WHERE seq=3"], "record 3 is missing"),
    (["DELETE FROM voxa_audit WHERE seq=5"], "ends at record 4 but was signed at record 5"),
    (["DELETE FROM voxa_audit WHERE seq=5", "UPDATE voxa_audit_head SET seq=4"], "head was changed"),
    (["UPDATE voxa_audit SET seq=seq+10 WHERE seq>=3", "UPDATE voxa_audit SET seq=3 WHERE seq=14",
      "UPDATE voxa_audit SET seq=4 WHERE seq=13", "UPDATE voxa_audit SET seq=5 WHERE seq=15"],
     "record 3 does not follow record 2"),  # records 3 and 4 swapped
    (["INSERT INTO voxa_audit (seq, time, event, actor, origin, prev, mac) "
      "SELECT 6, time, 'synthesis', actor, origin, mac, mac FROM voxa_audit WHERE seq=5"],
     "record 6 was changed"),  # a forged record appended without the key
])
def test_verify_finds_any_tampering(db, attack, problem):
    _log(5)
    assert audit.verify().ok
    _sql(db, *attack)
    v = audit.verify()
    assert not v.ok and problem in v.problem


def test_rewriting_the_whole_chain_needs_the_key(db, monkeypatch):
    _log(3)
    monkeypatch.setenv("VOXA_AUDIT_KEY", "cd" * 32)  # an attacker re-signing with their own key
    _log(1)
    monkeypatch.setenv("VOXA_AUDIT_KEY", "ab" * 32)
    v = audit.verify()
    assert not v.ok and "record 4 was changed" in v.problem


def test_concurrent_appends_keep_one_chain(db):
    threads = [threading.Thread(target=_log, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    v = audit.verify()
    assert v.ok and v.records == 100
    assert sorted(r.payload for r in audit.records()) == list(range(1, 101))


def test_key_file_is_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv("VOXA_AUDIT_KEY", raising=False)
    monkeypatch.setenv("VOXA_HOME", str(tmp_path))
    key = store.audit_key()
    assert len(key) == 32 and store.audit_key() == key
    assert (tmp_path / "audit.key").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("VOXA_AUDIT_KEY", "not hex")
    with pytest.raises(InputError):
        store.audit_key()


def test_cli_audit_show_and_verify(db):
    _log(2)
    rc, out, err = voxa_cli("audit", "show", "--json")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["payload"] for r in rows] == [1, 2]
    rc, out, err = voxa_cli("audit", "verify")
    assert rc == 0 and "intact: 2 records" in out
    _sql(db, "DELETE FROM voxa_audit WHERE seq=1")
    rc, out, err = voxa_cli("audit", "verify")
    assert rc == 1 and "record 1 is missing" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ consent
@pytest.fixture(scope="module")
def speakers(eval_dir):
    """Two utterances of LibriSpeech speaker 1688 and one of speaker 1998, with references."""
    pytest.importorskip("resemblyzer", reason="the diarize extra is not installed")
    from .conftest import librispeech

    files, refs = librispeech(eval_dir)
    by = {f.stem: (f, r) for f, r in zip(files, refs)}
    return by["1688-142285-0000"], by["1688-142285-0001"], by["1998-15444-0000"]


def test_consent_gate_with_real_voices(db, speakers, base):
    from voxa.safety import consent

    (a_rec, a_text), (a_other, _), (b_rec, _) = speakers
    c = consent.add("Ann", a_rec, statement=a_text)  # she reads the statement she was given
    assert c.state() == "active" and c.covers("clone")
    assert consent.check(c.id, a_other).similarity >= consent.MATCH_THRESHOLD  # her voice: allowed
    with pytest.raises(ConsentError, match="does not match Ann"):
        consent.check(c.id, b_rec)  # speaker A's consent, speaker B's voice
    with pytest.raises(ConsentError, match="covers 'clone', not 'broadcast'"):
        consent.check(c.id, a_other, use="broadcast")
    with pytest.raises(ConsentError, match="needs the speaker's consent"):
        consent.check(None, a_other)
    with pytest.raises(ConsentError, match="no consent with id"):
        consent.check("nope", a_other)
    consent.revoke(c.id)
    with pytest.raises(ConsentError, match="is revoked"):
        consent.check(c.id, a_other)
    with pytest.raises(ConsentError, match="does not say the statement"):
        consent.add("Bob", b_rec, statement="I agree that voxa may make a synthetic copy of my voice.")
    events = [(r.event, json.loads(r.detail or "{}").get("reason")) for r in audit.records()]
    assert events == [("consent-add", None), ("refusal", "voice"), ("refusal", "scope"), ("refusal", "missing"),
                      ("refusal", "unknown"), ("consent-revoke", None), ("refusal", "revoked"),
                      ("refusal", "statement")]
    assert audit.verify().ok


def test_consent_expires(db, speakers, base):
    import time

    from voxa.safety import consent

    (a_rec, a_text), (a_other, _), _ = speakers
    c = consent.add("Ann", a_rec, statement=a_text, expires=time.time() + 1.5)
    time.sleep(1.6)
    with pytest.raises(ConsentError, match="is expired"):
        consent.check(c.id, a_other)
    with pytest.raises(InputError, match="in the past"):
        consent.add("Ann", a_rec, statement=a_text, expires=time.time() - 1)


def test_cli_consent_flow(db, speakers, base):
    (a_rec, a_text), (a_other, _), (b_rec, _) = speakers
    rc, out, err = voxa_cli("consent", "add", "--speaker", "Ann", "--recording", a_rec, "--statement", a_text,
                            "--expires", "30d")
    assert rc == 0, err
    cid = out.split()[1]
    rc, out, err = voxa_cli("consent", "verify", cid, "--reference", a_other)
    assert rc == 0 and "allowed" in out, err
    rc, out, err = voxa_cli("consent", "verify", cid, "--reference", b_rec)
    assert rc == 1 and "refused" in err and len(err.strip().splitlines()) == 1
    rc, out, err = voxa_cli("consent", "list", "--json")
    assert json.loads(out)["state"] == "active" and json.loads(out)["expires"] > 0
    rc, out, err = voxa_cli("consent", "revoke", cid)
    assert rc == 0
    rc, out, err = voxa_cli("consent", "add", "--speaker", "Ann", "--recording", a_rec, "--expires", "soon")
    assert rc == 2 and "30d" in err

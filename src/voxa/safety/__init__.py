"""Responsible synthesis: the audit log, consent to clone a voice, and the watermark.

- :mod:`voxa.safety.audit`: an append-only, HMAC-chained log of every synthesis and refusal
  (``voxa audit show|verify``);
- :mod:`voxa.safety.consent`: recorded, checked, scoped, expiring, revocable consent and the one
  cloning gate (``voxa consent add|verify|revoke|list``);
- :mod:`voxa.safety.store`: where both live (SQLAlchemy; SQLite by default).
"""

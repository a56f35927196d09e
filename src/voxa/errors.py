"""Errors voxa raises on purpose.

Each carries a message meant for a person: the CLI prints it as one line, the server returns it
in OpenAI's error shape. Anything else escaping voxa is a bug.
"""

from __future__ import annotations


class VoxaError(Exception):
    """Base class: a clear, user-facing failure."""

    #: Short machine-readable code (used by the server's error JSON).
    code = "voxa_error"


class AudioError(VoxaError):
    """Input audio is missing, unreadable, empty, corrupt or truncated."""

    code = "invalid_audio"


class TooLong(AudioError):
    """Input audio is longer than the limit for this use (found while decoding, whatever its
    header claims)."""

    code = "audio_too_long"


class Busy(VoxaError):
    """Too much work is waiting already: try again later (``retry_after`` seconds)."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class ModelError(VoxaError):
    """A model name is unknown, or its weights cannot be found or assembled."""

    code = "model_not_found"


class InputError(VoxaError):
    """A parameter is out of range or unknown (language code, format, task...)."""

    code = "invalid_request"


class OutputError(VoxaError):
    """Results cannot be written where asked."""

    code = "output_error"


class ConsentError(VoxaError):
    """Cloning a voice was refused: consent missing, revoked, expired, out of scope, or the
    voice does not match the person who consented."""

    code = "consent_refused"

"""Text in, sentences out: cleaning and sentence splitting for streaming synthesis.

Sentence boundaries come from pysbd (rule-based, 22 languages, MIT): it already knows
abbreviations ("Dr.", "e.g.", "U.S."), decimals ("9.30", "$9.99"), initials ("J. K. Rowling"),
ellipses and closing quotes, which is exactly what a naive ``[.!?]`` split gets wrong. pysbd
slows down on very long inputs, so the text is fed to it in windows of a few thousand
characters and sentences are released as soon as they are known to be complete: the first
sentence of a 100k-character book is spoken without waiting for the rest.

A sentence too long to synthesize at once (or to start speaking quickly) is cut at clause
punctuation (; : , —), then at word boundaries as a last resort.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterator

from ..errors import InputError

MAX_CHARS = 300          # longer sentences are cut at clause boundaries
WINDOW = 4000            # characters handed to pysbd at a time
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u2060-\u2064\ufeff]")
_BRACKETS = re.compile(r"\[{2,}|\]{2,}")
_SPACES = re.compile(r"[ \t\u00a0]+")
_SPACE_PUNCT = re.compile(r" +([.,!?;:])(?=\s|$)")
_PARAGRAPH = re.compile(r"\n\s*\n")
OPEN = "\u2063"  # marks a window that ends inside a paragraph
_CLAUSE = re.compile(r"(?<=[;:,\u2014\u2013])\s+|\s+(?=[\u2014\u2013]\s)")
# pysbd's languages (ISO 639-1); others are split with the English rules
_PYSBD_LANGS = {"en", "hi", "mr", "zh", "es", "am", "ar", "hy", "bg", "ur", "ru", "pl", "fa", "nl",
                "da", "fr", "my", "el", "it", "ja", "de", "kk", "sk"}


def clean(text: str) -> str:
    """Normalise Unicode (NFKC), drop control characters, collapse spaces; keep line breaks."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, not {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _BRACKETS.sub(lambda m: m.group(0)[0], _CONTROL.sub(" ", text))  # [[...]]: raw phonemes to espeak/Piper
    lines = (_SPACE_PUNCT.sub(r"\1", _SPACES.sub(" ", line)).strip() for line in text.split("\n"))
    return "\n".join(lines).strip()


def speakable(text: str) -> bool:
    """True if the text has anything to pronounce (a letter or a digit)."""
    return any(ch.isalnum() for ch in text)


@lru_cache(maxsize=8)
def _segmenter(language: str):
    import pysbd

    lang = language.split("-")[0].lower()
    return pysbd.Segmenter(language=lang if lang in _PYSBD_LANGS else "en", clean=False)


def _paragraphs(text: str) -> Iterator[str]:
    """Paragraphs (blank-line separated); a paragraph longer than WINDOW comes in WINDOW-sized
    pieces cut at a space and marked as open (its last sentence may continue in the next)."""
    pos = 0
    while pos < len(text):
        m = _PARAGRAPH.search(text, pos, min(len(text), pos + WINDOW + 2))
        if m:
            yield text[pos:m.start()]
            pos = m.end()
        elif len(text) - pos <= WINDOW:
            yield text[pos:]
            return
        else:
            cut = text.rfind(" ", pos, pos + WINDOW)
            cut = cut if cut > pos else pos + WINDOW
            yield text[pos:cut] + OPEN
            pos = cut


def split_long(sentence: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Cut a sentence longer than max_chars at clause punctuation, else at spaces."""
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    cur = ""
    for part in _CLAUSE.split(sentence):
        if cur and len(cur) + 1 + len(part) > max_chars:
            out.append(cur)
            cur = part
        else:
            cur = f"{cur} {part}" if cur else part
    if cur:
        out.append(cur)
    final: list[str] = []
    for piece in out:  # a clause still too long: cut at the last space before the limit
        while len(piece) > max_chars:
            cut = piece.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            final.append(piece[:cut].strip())
            piece = piece[cut:].strip()
        if piece:
            final.append(piece)
    return final


def sentences(text: str, language: str = "en", max_chars: int = MAX_CHARS) -> Iterator[str]:
    """Yield the sentences of ``text`` one by one, cleaned, each at most ``max_chars`` long.
    Lazy: the first sentence comes before the rest of a long text has been split."""
    seg = _segmenter(language)
    carry = ""
    for para in _paragraphs(clean(text)):
        open_end = para.endswith(OPEN)
        para = f"{carry} {para.removesuffix(OPEN).strip()}".strip()
        carry = ""
        parts = [p.strip() for p in seg.segment(para.replace("\n", " ")) if p.strip()]
        if open_end and parts:
            carry = parts.pop()  # may continue in the next window
            if len(carry) > WINDOW // 2:  # no boundary in sight: release all but its tail
                *done, carry = split_long(carry, max_chars)
                parts.extend(done)
        for part in parts:
            yield from split_long(part, max_chars)
    if carry:
        yield from split_long(carry, max_chars)

"""OpenAI's voice names, each mapped to an installed voxa voice, so that clients which only send
OpenAI names (Pipecat's ``OpenAITTSService``, the ``openai`` SDK's examples) speak.

OpenAI describes its voices as female or male; each name goes to the first installed voice of
that kind here (hibari's heart for female, Piper's joe for male when the piper extra is in,
else heart), and ``fable`` (a British male in OpenAI's set) to hibari's fable when that voice is
installed. An operator can map any name to any installed voice (``voxa serve --voice-map
alloy=piper:joe``). The names and their kinds are from OpenAI's text-to-speech guide.
"""

from __future__ import annotations

from functools import lru_cache

FEMALE = ("alloy", "coral", "nova", "sage", "shimmer", "marin")
MALE = ("ash", "ballad", "echo", "fable", "onyx", "verse", "cedar")
NAMES = FEMALE + MALE
# voxa voices tried in order for each kind; the first installed one is used
PREFER = {"female": ("hibari:heart", "hibari:kore", "hibari:emma", "piper:joe"),
          "male": ("piper:joe", "hibari:fenrir", "hibari:fable", "hibari:heart")}


def is_openai(name: str) -> bool:
    return name.lower() in NAMES


@lru_cache(maxsize=1)
def _default() -> tuple[tuple[str, str], ...]:
    return tuple(_compute().items())


def default_map() -> dict[str, str]:
    """OpenAI name -> the id of the installed voxa voice it means here (worked out once)."""
    return dict(_default())


def _compute() -> dict[str, str]:
    from .engine import resolve

    def first(candidates) -> str | None:
        for c in candidates:
            try:
                info = resolve(c)
            except Exception:  # engine not installed (e.g. no piper extra)
                continue
            if info.installed:
                return info.id
        return None

    female, male = first(PREFER["female"]), first(PREFER["male"])
    out = {n: female or male for n in FEMALE} | {n: male or female for n in MALE}
    fable = first(("hibari:fable",))
    if fable:
        out["fable"] = fable
    return {k: v for k, v in out.items() if v}

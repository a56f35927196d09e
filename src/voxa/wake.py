"""Wake words: hear "Okay Nabu" (or "Hey Jarvis", "Hey Mycroft", "Alexa", "Hey Rhasspy") in a
stream of audio, on a CPU, in well under a millisecond per 10 ms of sound.

    import voxa.wake
    for hit in voxa.wake.detect("kitchen.wav", words=["okay_nabu"]):
        print(hit.time, hit.word)

    detector = voxa.wake.WakeDetector(["okay_nabu"])   # one per stream
    hits = detector.push(samples)                         # 16 kHz float32, any length

Two engines, both TensorFlow Lite models that ship inside their PyPI wheels (Apache-2.0, with
the TFLite C library, nothing to compile, no torch), assembled through voxa's model registry
(sha256-checked, offline):

- ``micro`` (microWakeWord, ``pymicro-wakeword``): the streaming models Home Assistant's voice
  satellites run; four words; each model carries its own tuned cut-off. The default.
- ``oww`` (openWakeWord, ``pyopen-wakeword``): a shared melspectrogram + embedding front end and
  a small classifier per word; five words (``hey_rhasspy`` only here); cut-off 0.5.

A word is named ``okay_nabu`` (its default engine) or ``oww:okay_nabu`` / ``micro:okay_nabu``.
A word is reported when its probability rises past the cut-off, once: it must fall back under
the cut-off before it can be reported again (a phrase keeps the probability up for half a second
or more), and not within ``refractory_s`` (2 s) of its last report. So one utterance gives one
detection. Chosen over openWakeWord's own package (0.6 downloads its models
at run time; 0.5.1 bundles them under CC BY-NC-SA) and Porcupine (needs an access key).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError
from .types import WakeDetection

SAMPLE_RATE = 16000
ENGINES = {"micro": "micro-wakeword", "oww": "openwakeword"}  # engine → registry model
PHRASES = {"okay_nabu": "Okay Nabu", "hey_jarvis": "Hey Jarvis", "hey_mycroft": "Hey Mycroft",
           "alexa": "Alexa", "hey_rhasspy": "Hey Rhasspy"}
WORDS = {"micro": ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"),
         "oww": ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa", "hey_rhasspy")}
OWW_THRESHOLD = 0.5
DEFAULT_WORD = "okay_nabu"

__all__ = ["WakeDetector", "detect", "parse", "words", "WORDS", "PHRASES", "DEFAULT_WORD"]


def parse(name: str) -> tuple[str, str]:
    """``"okay_nabu"`` → ``("micro", "okay_nabu")``; ``"oww:hey_rhasspy"`` → ``("oww", "hey_rhasspy")``.
    Raises :class:`InputError` naming the words there are."""
    text = (name or "").strip().lower().replace("-", "_").replace(" ", "_")
    engine, _, word = text.rpartition(":")
    if engine and engine not in WORDS:
        raise InputError(f"unknown wake word engine {engine!r}: use one of {', '.join(WORDS)}")
    if not engine:
        engine = next((e for e, ws in WORDS.items() if word in ws), "")
    if word not in WORDS.get(engine, ()):
        raise InputError(f"unknown wake word {name!r}; bundled: {', '.join(names())}")
    return engine, word


def _name(engine: str, word: str) -> str:
    """A word's plain name when ``engine`` is its default, else ``engine:word``."""
    return word if parse(word)[0] == engine else f"{engine}:{word}"


def names() -> list[str]:
    """Every bundled wake word, as it can be asked for."""
    return [_name(e, w) for e, ws in WORDS.items() for w in ws]


def words() -> list[dict]:
    """One row per bundled wake word: name, phrase, engine, model, licence, whether it is installed."""
    from . import registry

    rows = []
    for name in names():
        engine, word = parse(name)
        spec = registry.lookup(ENGINES[engine], "wake")
        rows.append({"name": name, "phrase": PHRASES[word], "engine": engine, "model": spec.name,
                     "licence": spec.licence, "installed": registry.is_installed(spec)})
    return rows


PACKAGES = {"micro": "pymicro_wakeword", "oww": "pyopen_wakeword"}


def missing(words: Iterable[str]) -> str | None:
    """The package ``words`` need that is not installed (None when all are)."""
    from importlib.util import find_spec

    for engine in sorted({parse(w)[0] for w in words}):
        if find_spec(PACKAGES[engine]) is None:
            return PACKAGES[engine].replace("_", "-")
    return None


def _folder(engine: str) -> Path:
    from . import registry

    spec = registry.lookup(ENGINES[engine], "wake")
    try:
        return registry.assemble(spec)
    except ModelError as e:
        raise ModelError(f"{e} (the wake-word engine {engine!r}; or pip install 'voxa[wake]')") from None


def _tflite(package: str) -> Path:
    """The TFLite C library inside the engine's wheel."""
    from . import registry

    lib = registry._package_dir(package)
    found = next(iter(sorted((lib / "lib").glob("*tensorflowlite_c.*"))), None) if lib else None
    if found is None:
        raise ModelError(f"the {package} package has no TFLite library for this platform; "
                         f"pip install 'voxa[wake]' on Linux (x86-64, arm64), macOS (arm64) or Windows")
    return found


class _Micro:
    """microWakeWord: 10 ms feature frames shared by every word's model."""

    def __init__(self, words: list[str], threshold: float | None):
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        folder, lib = _folder("micro"), _tflite("pymicro_wakeword")
        self.models = {w: MicroWakeWord.from_config(folder / f"{w}.json", libtensorflowlite_c_path=lib)
                       for w in words}
        self.cutoff = {w: threshold if threshold is not None else m.probability_cutoff for w, m in self.models.items()}
        self.features = MicroWakeWordFeatures()
        self.frames = 0  # 10 ms feature frames made so far

    def push(self, pcm: bytes) -> Iterable[tuple[str, float, float]]:
        """(word, time, probability) at each of the models' steps: every ``stride`` frames (the
        frames between are not inferred, and their 0.0 says nothing)."""
        for feature in self.features.process_streaming(pcm):
            self.frames += 1
            for word, model in self.models.items():
                p = model.process_streaming_prob(feature)
                if p is not None and self.frames % model.stride == 0:
                    yield word, self.frames * 0.01, float(p)

    def close(self):
        for m in self.models.values():
            m.close()


class _Oww:
    """openWakeWord: 80 ms of audio → embeddings → one probability per word per step."""

    def __init__(self, words: list[str], threshold: float | None):
        from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures

        folder, lib = _folder("oww"), _tflite("pyopen_wakeword")
        self.models = {w: OpenWakeWord.from_model(folder / f"{w}.tflite", libtensorflowlite_c_path=lib)
                       for w in words}
        self.cutoff = dict.fromkeys(words, threshold if threshold is not None else OWW_THRESHOLD)
        self.features = OpenWakeWordFeatures(folder / "melspectrogram.tflite", folder / "embedding_model.tflite", lib)
        self.samples = 0

    def push(self, pcm: bytes) -> Iterable[tuple[str, float, float]]:
        step = 2 * 1280  # the front end's 80 ms: fed one step at a time, each result has its time
        for i in range(0, len(pcm), step):
            piece = pcm[i:i + step]
            self.samples += len(piece) // 2
            t = self.samples / SAMPLE_RATE
            for embedding in self.features.process_streaming(piece):
                for word, model in self.models.items():
                    for p in model.process_streaming(embedding):
                        yield word, t, float(p)

    def close(self):
        for m in self.models.values():
            m.close()
        self.features.close()


class WakeDetector:
    """Wake-word detection over one stream. ``push`` 16 kHz mono float32 samples (or 16-bit PCM
    bytes) in pieces of any length; it returns the detections those samples completed, with
    ``time`` in seconds from the start of the stream (about the end of the phrase)."""

    def __init__(self, words: Iterable[str] = (DEFAULT_WORD,), *, threshold: float | None = None,
                 refractory_s: float = 2.0):
        names = [words] if isinstance(words, str) else list(words)
        wanted = [parse(w) for w in names]
        if not wanted:
            raise InputError("name at least one wake word")
        if (lack := missing(names)) is not None:
            raise ModelError(f"wake words need the {lack} package: pip install 'voxa[wake]'")
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise InputError(f"the wake word threshold must be between 0 and 1, not {threshold}")
        self.refractory_s = refractory_s
        self._engines = []
        for engine, cls in (("micro", _Micro), ("oww", _Oww)):
            mine = sorted({w for e, w in wanted if e == engine})
            if mine:
                self._engines.append((engine, cls(mine, threshold)))
        self._last: dict[tuple[str, str], float] = {}  # (engine, word) -> time of its last report
        self._high: set[tuple[str, str]] = set()  # words whose probability is past the cut-off now
        self._tail = b""

    @property
    def names(self) -> list[str]:
        return [_name(e, w) for e, eng in self._engines for w in eng.models]

    def push(self, samples) -> list[WakeDetection]:
        if isinstance(samples, (bytes, bytearray, memoryview)):
            pcm = self._tail + bytes(samples)
        else:
            from .audio import to_pcm16

            pcm = self._tail + to_pcm16(np.asarray(samples, dtype=np.float32))
        cut = len(pcm) - len(pcm) % 2
        pcm, self._tail = pcm[:cut], pcm[cut:]
        hits = []
        for engine, eng in self._engines:
            for word, t, p in eng.push(pcm):
                key = (engine, word)
                if p <= eng.cutoff[word]:
                    self._high.discard(key)
                    continue
                if key in self._high:  # the same phrase, still heard
                    continue
                self._high.add(key)
                last = self._last.get(key)
                if last is not None and t - last < self.refractory_s:
                    continue
                self._last[key] = t
                hits.append(WakeDetection(word=_name(engine, word),
                                          phrase=PHRASES[word], time=round(t, 2), probability=round(p, 3),
                                          engine=engine))
        return sorted(hits, key=lambda h: h.time)

    def close(self) -> None:
        for _, eng in self._engines:
            eng.close()
        self._engines = []


def detect(source, words: Iterable[str] = (DEFAULT_WORD,), *, threshold: float | None = None,
           refractory_s: float = 2.0, max_seconds: float | None = None) -> list[WakeDetection]:
    """Every wake word in a recording (a path, bytes, a file object, or 16 kHz float32 samples),
    in time order. A file is decoded a block at a time: memory stays flat however long it is."""
    from .audio import stream

    detector = WakeDetector(words, threshold=threshold, refractory_s=refractory_s)
    try:
        if isinstance(source, np.ndarray):
            blocks = (source[i:i + SAMPLE_RATE * 30] for i in range(0, len(source), SAMPLE_RATE * 30))
        else:
            blocks = stream(source, block_seconds=30.0, max_seconds=max_seconds)
        hits = []
        for block in blocks:
            hits += detector.push(block)
        return hits
    finally:
        detector.close()

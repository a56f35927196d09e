"""Convert a CTranslate2 Whisper model folder (faster-whisper's format) to an openai-whisper checkpoint.

The benchmark uses it to run openai-whisper (``import whisper``) on exactly the weights that
faster-whisper runs, so the two engines can be compared side by side offline.

CTranslate2 ``model.bin`` layout (written by ``ctranslate2/specs/model_spec.py::_serialize``,
all integers little-endian; a string is ``uint16 length incl. NUL`` + UTF-8 bytes + ``\\0``)::

    uint32 binary_version (6 today; >= 5 accepted), string spec_name ("WhisperSpec"), uint32 revision
    uint32 n_variables, then per variable (sorted by name):
        string name, uint8 rank, uint32 dim * rank, uint8 dtype_id, uint32 n_bytes, raw bytes
        dtype_id: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
    uint32 n_aliases, then per alias: string alias_name, string target_name

Scalars (``encoder/num_heads``, ``decoder/pre_norm`` ...) are rank-0 variables. Int8/int16-quantised
weights come with a ``<name>_scale`` variable (``q = round(w * scale)``), dequantised here.

Name mapping (CT2 -> openai-whisper ``whisper/model.py``); ``E`` = encoder block, ``D`` = decoder block::

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

Layer norms map gamma/beta -> weight/bias. Dimensions come from the tensor shapes and the
``num_heads`` scalars. ``alignment_heads`` (used only for word timestamps) is a non-persistent
buffer in openai-whisper that ``whisper.load_model(path)`` cannot restore, so the checkpoint also
carries the ``[layer, head]`` pairs from config.json under ``"alignment_heads"``;
:func:`load_model` applies them.

    python benchmarks/ct2_to_openai_whisper.py CT2_DIR OUT.pt
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
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


def convert(ct2_dir: Path, out_path: Path) -> Path:
    """Convert ``ct2_dir`` (model.bin + config.json) into an openai-whisper checkpoint at ``out_path``."""
    import torch

    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    spec, variables = read_ct2_model(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: spec {spec!r} is not a Whisper model")
    if not variables.get("decoder/pre_norm", True) or variables.get("decoder/alibi", False):
        raise ValueError("unexpected decoder layout (not pre-norm, or ALiBi)")
    sd, dims = build_state_dict(variables)
    config_path = ct2_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    heads = [[int(layer), int(head)] for layer, head in config.get("alignment_heads") or []]
    state = {k: torch.from_numpy(np.array(a, dtype=np.float16)) for k, a in sd.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": state, "alignment_heads": heads}, out_path)
    return out_path


def load_model(path: Path, device: str = "cpu"):
    """``whisper.load_model(path)`` plus the alignment heads stored by :func:`convert`."""
    import torch
    import whisper

    model = whisper.load_model(str(path), device=device)
    heads = torch.load(str(path), map_location="cpu").get("alignment_heads")
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse().to(device), persistent=False)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct2_dir", type=Path, help="CTranslate2 Whisper folder (model.bin, config.json)")
    parser.add_argument("out", type=Path, help="output .pt for whisper.load_model()")
    args = parser.parse_args(argv)
    out = convert(args.ct2_dir, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

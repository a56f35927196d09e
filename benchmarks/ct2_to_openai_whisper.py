"""Convert a CTranslate2 Whisper model folder (faster-whisper's format) to an openai-whisper checkpoint.

The benchmark uses it to run openai-whisper (``import whisper``) on exactly the weights that
faster-whisper runs, so the two engines can be compared side by side offline. The reading of
CTranslate2's ``model.bin`` and the name mapping are the library's
(:mod:`voxa.finetune.convert`, which ``voxa finetune`` uses too). ``alignment_heads`` (used
only for word timestamps) is a non-persistent buffer in openai-whisper that
``whisper.load_model(path)`` cannot restore, so the checkpoint also carries the
``[layer, head]`` pairs from config.json under ``"alignment_heads"``; :func:`load_model` applies them.

    python benchmarks/ct2_to_openai_whisper.py CT2_DIR OUT.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from voxa.finetune.convert import build_state_dict, read_ct2_model


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

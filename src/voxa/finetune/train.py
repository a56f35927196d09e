"""Fine-tune Whisper on your own recordings, on a CPU, and serve the result by name.

The article's recipe: Hugging Face ``Seq2SeqTrainer`` on ``WhisperForConditionalGeneration``
with a data collator and a small learning rate, LoRA adapters (``peft``) or all weights, the
encoder optionally frozen. voxa adds what its users need around it:

* the start is the bundled CTranslate2 weights (:func:`voxa.finetune.convert.load_hf`: no hub);
* features are the ones voxa decodes with (faster-whisper's log-mel, 30 s windows) and the
  labels Whisper's own prompt (``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>``
  text ``<|endoftext|>``), so training sees what inference sees;
* a held-out split (or a validation set of your own, ``validation=``), and its WER before and
  after measured through voxa's own transcription of the exported model (Whisper's English
  normaliser), not the PyTorch model, each recording decoded on its own (not packed with others);
* checkpoints in ``$VOXA_HOME/finetune/NAME`` every ``save_steps``: run the same command again
  after an interrupt (even ``kill -9``) and it continues from the last one;
* the result merged (LoRA) and exported back to CTranslate2 (:func:`~.convert.export_ct2`) into
  ``$VOXA_HOME/models/NAME`` with a manifest (``finetune.json``): ``voxa models`` lists it and
  every entry point takes it by name (``voxa transcribe -m NAME``, the server's ``model=NAME``).

Needs the ``finetune`` extra (torch CPU, transformers, peft); the rest of voxa stays torch-free.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .. import audio, registry
from ..errors import InputError, ModelError
from . import data as corpus

MANIFEST = "finetune.json"


@dataclass
class Settings:
    base: str = "whisper-base"
    epochs: float = 3.0
    lr: float | None = None  # None: 1e-4 with LoRA, 1e-5 for all weights (rate())
    lora: bool = True
    lora_rank: int = 32
    freeze_encoder: bool = False
    augment: bool = False
    batch_size: int = 8
    val_fraction: float = 0.1
    validation: str | None = None  # recordings of your own to measure WER on; then all of DATA trains
    max_steps: int | None = None  # stop after this many steps (a quick run); None: the epochs
    save_steps: int = 20
    language: str = "en"
    seed: int = 0

    def rate(self) -> float:
        """LoRA's default is 1e-4. It was 5e-4 until measured on real speech: six readers through a
        phone channel, whisper-base with the encoder trainable, 18.73% -> 28.04% WER at 5e-4 and
        18.44% at 1e-4; on a synthetic voice, 5e-4 cost 1.8 points on real English, 1e-4 at most
        0.4 (benchmarks/results/finetune-calls-base*.md, finetune-voice-base*.md)."""
        return self.lr if self.lr is not None else (1e-4 if self.lora else 1e-5)


def work_dir(name: str) -> Path:
    return registry.home() / "finetune" / name


def check_name(name: str) -> str:
    ok = name and len(name) <= 64 and all(c.isalnum() or c in "._-" for c in name) and name[0].isalnum()
    if not ok:
        raise InputError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (up to 64)")
    if registry.lookup(name) is not None:
        raise InputError(f"model name {name!r} is a bundled model's name; pick another")
    return name


class _Corpus:
    """A torch Dataset of examples: log-mel features and label tokens (augmented copies when asked)."""

    def __init__(self, examples, tok, n_mels: int, *, augment: bool, seed: int):
        from faster_whisper.feature_extractor import FeatureExtractor

        self.examples, self.augment = examples, augment
        self.fe = FeatureExtractor(feature_size=n_mels)
        self.rng = np.random.default_rng(seed)
        prompt = list(tok.sot_sequence[1:]) + [tok.no_timestamps]  # the model starts with <|startoftranscript|>
        self.labels = [prompt + tok.encode(" " + e.text) + [tok.eot] for e in examples]
        too_long = [e.path.name for e, lab in zip(examples, self.labels) if len(lab) > 440]
        if too_long:
            raise InputError(f"transcripts too long for Whisper (over 440 tokens): {', '.join(too_long[:3])}")

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        x = self.examples[i].samples()
        if self.augment:
            x = corpus.augment(x, self.rng)
        window = np.zeros(int(corpus.MAX_S * audio.SAMPLE_RATE), np.float32)
        window[: x.size] = x[: window.size]
        return {"input_features": self.fe(window, padding=0)[:, :3000].astype(np.float32), "labels": self.labels[i]}


def _collate(batch):
    import torch

    feats = torch.from_numpy(np.stack([b["input_features"] for b in batch]))
    n = max(len(b["labels"]) for b in batch)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    for i, b in enumerate(batch):
        labels[i, : len(b["labels"])] = torch.tensor(b["labels"])
    return {"input_features": feats, "labels": labels}


def adapt(model, s: Settings):
    """What trains: the encoder frozen or not, LoRA adapters (q and v projections) or all weights.
    LoRA's starting weights are random: they are drawn from ``s.seed`` (the Trainer seeds only
    once the model exists), so the same data and settings give the same model."""
    import torch

    if s.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    if not s.lora:
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(s.seed)
    targets = r".*decoder.*\.(q_proj|v_proj)" if s.freeze_encoder else ["q_proj", "v_proj"]
    return get_peft_model(model, LoraConfig(r=s.lora_rank, lora_alpha=2 * s.lora_rank, lora_dropout=0.05,
                                            target_modules=targets, bias="none"))


def _peak_rss_mb() -> int:
    """This process's peak resident memory (VmHWM: ru_maxrss would include a parent's, across exec)."""
    try:
        with open("/proc/self/status") as f:
            return round(next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024)
    except (OSError, StopIteration):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _wer(model: str | Path, examples, language: str | None) -> float:
    from .. import load_model
    from ..evaluate import wer

    engine = load_model(str(model))
    # each recording decoded alone: packed, Whisper reads the text of the recording before it in
    # the window, and what a short clip was packed with moves its WER more than a fine-tune does
    # (benchmarks/finetune.py); training sees one recording a window too
    hyps = [t.text for t in engine.transcribe_many([e.path for e in examples], language=language, pack=False)]
    return 100.0 * wer([e.text for e in examples], hyps)


def finetune(data: str | Path, name: str, settings: Settings | None = None, *, restart: bool = False,
             on_progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print) -> dict:
    """Fine-tune ``settings.base`` on ``data`` and install the result as model ``name``.
    Returns the run's report (also in the model's ``finetune.json``)."""
    s = settings or Settings()
    check_name(name)
    if s.batch_size < 1 or s.epochs <= 0 or not 0 < s.val_fraction < 1 or (s.max_steps is not None and s.max_steps < 1):
        raise InputError("batch size, epochs and max steps must be positive; val fraction between 0 and 1")
    t0 = time.time()
    examples = corpus.load(data)  # bad data fails here, before anything heavy is loaded
    if s.validation is not None:
        s = replace(s, validation=str(Path(s.validation).expanduser().resolve()))  # as the resume check sees it
        train, val = examples, corpus.load(s.validation)
        overlap = {e.path.resolve() for e in train} & {e.path.resolve() for e in val}
        if overlap:
            raise InputError(f"{len(overlap)} recording(s) are in both the training data and the validation set, "
                             f"e.g. {sorted(overlap)[0]}: a WER measured on them would say nothing")
    else:
        train, val = corpus.split(examples, s.val_fraction, s.seed)
    try:
        import torch
        from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ModelError('fine-tuning needs the finetune extra: pip install "voxa[finetune]" '
                         "(install a CPU torch first: pip install torch --index-url "
                         "https://download.pytorch.org/whl/cpu)") from None
    from .convert import load_hf, tokenizer_of

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")  # its own deprecations
    hf_logging.disable_progress_bar()  # shard writing and weight loading: voxa shows its own bar
    hf_logging.set_verbosity_error()
    base_name, base_dir = registry.resolve(s.base)
    work = work_dir(name)
    run = {"data": str(Path(data).expanduser().resolve()), **asdict(s)}
    if work.exists() and (restart or not (work / "run.json").is_file()):
        shutil.rmtree(work)
    if (work / "run.json").is_file() and json.loads((work / "run.json").read_text()) != run:
        raise InputError(f"an interrupted fine-tune named {name!r} used other data or settings; "
                         "run with --restart to start over")
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.json").write_text(json.dumps(run, indent=1))

    model = load_hf(base_dir)
    multilingual = model.config.vocab_size >= 51865
    language = s.language if multilingual else None
    tok = tokenizer_of(base_dir, multilingual)
    if multilingual:
        from faster_whisper.tokenizer import Tokenizer

        try:
            tok = Tokenizer(tok.tokenizer, True, task="transcribe", language=s.language)
        except ValueError:
            raise InputError(f"unknown language {s.language!r}: use a Whisper language code (en, de, ...)") from None
    elif s.language not in ("en", None):
        raise InputError(f"{base_name} is English only; recordings in {s.language!r} need whisper-base")
    model = adapt(model, s)
    train_set = _Corpus(train, tok, model.config.num_mel_bins, augment=s.augment, seed=s.seed)
    steps_per_epoch = -(-len(train) // s.batch_size)
    total = s.max_steps or max(1, round(s.epochs * steps_per_epoch))

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if on_progress:
                on_progress(state.global_step, total)

    args = Seq2SeqTrainingArguments(
        output_dir=str(work), per_device_train_batch_size=s.batch_size, learning_rate=s.rate(),
        max_steps=total, warmup_steps=min(50, total // 10), lr_scheduler_type="linear",
        logging_steps=max(1, min(10, total // 5)), save_strategy="steps", save_steps=s.save_steps,
        save_total_limit=2, report_to="none", use_cpu=True, dataloader_num_workers=0,
        remove_unused_columns=False, seed=s.seed, disable_tqdm=True, label_names=["labels"])
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_set, data_collator=_collate,
                             callbacks=[Progress()])
    trainer.remove_callback(PrinterCallback)  # the progress bar says how it goes
    # a checkpoint counts once its trainer_state.json is written (the Trainer writes it last): a
    # kill -9 in the middle of saving leaves one without it
    checkpoints = sorted((p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                         key=lambda p: int(p.name.split("-")[1]))
    if checkpoints:
        log(f"resuming from {checkpoints[-1].name} (step {checkpoints[-1].name.split('-')[1]} of {total})")
    torch.manual_seed(s.seed)
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    model = trainer.model
    if s.lora:
        model = model.merge_and_unload()

    from .convert import export_ct2

    final = registry.home() / "models" / name
    tmp = final.with_name(f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    export_ct2(model.eval(), base_dir, tmp)
    report = {"name": name, "base": base_name, "data": run["data"], "train": len(train), "validation": len(val),
              "held_out": [str(e.path) for e in val],
              "train_seconds": round(sum(e.seconds for e in train), 1), "steps": total, "settings": asdict(s),
              "loss": round(float(result.training_loss), 4), "train_s": round(time.time() - t0, 1),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    log(f"measuring WER on the {len(val)} held-out recordings, before and after")
    report["wer_before"] = round(_wer(base_name, val, language), 2)
    report["wer_after"] = round(_wer(tmp, val, language), 2)
    report["peak_rss_mb"] = _peak_rss_mb()
    (tmp / MANIFEST).write_text(json.dumps(report, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    shutil.rmtree(work, ignore_errors=True)  # done: the checkpoints are not needed any more
    return report

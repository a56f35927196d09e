"""``voxa finetune DATA --out NAME`` (a shell over voxa.finetune)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import app, err, out, progress_bar


@app.command()
def finetune(
    data: Path = typer.Argument(..., help="A folder of recordings with a .txt transcript beside each, or a "
                                          "manifest (.csv with audio,text columns, or .jsonl)."),
    name: str = typer.Option(..., "--out", help="Name of the new model (then `voxa transcribe -m NAME`)."),
    base: str = typer.Option("whisper-base", "--base", help="Model to start from: whisper-base or whisper-tiny.en."),
    epochs: float = typer.Option(3.0, "--epochs", min=0.01, help="Passes over the training recordings."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate (default 1e-4 with LoRA, "
                                                                    "1e-5 with --full)."),
    lora: bool = typer.Option(True, "--lora/--full", help="Train LoRA adapters (default), or every weight."),
    freeze_encoder: bool = typer.Option(False, "--freeze-encoder", help="Train the decoder only."),
    augment: bool = typer.Option(False, "--augment", help="Vary speed, gain and noise of each training copy."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Recordings per step (memory grows with it)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    save_steps: int = typer.Option(20, "--save-steps", min=1, help="Steps between checkpoints (for resuming)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.01, max=0.9,
                                       help="Share of the recordings held out to measure WER before and after."),
    val: Optional[Path] = typer.Option(None, "--val", help="Your own held-out recordings (a folder or manifest, "
                                                           "as DATA) to measure WER on; then all of DATA trains."),
    language: str = typer.Option("en", "--language", "-l", help="Language of the recordings (multilingual bases)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, LoRA's starting weights and the shuffling: "
                             "another seed, another model (run a few to see the spread)."),
    restart: bool = typer.Option(False, "--restart", help="Start over instead of resuming an interrupted run."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
):
    """Fine-tune Whisper on your recordings on this CPU, and install the result as model NAME.
    Interrupted (even kill -9)? Run the same command again: it resumes from its last checkpoint."""
    from ..finetune.train import Settings, finetune as run

    settings = Settings(base=base, epochs=epochs, lr=lr, lora=lora, freeze_encoder=freeze_encoder,
                        augment=augment, batch_size=batch_size, max_steps=max_steps, save_steps=save_steps,
                        val_fraction=val_fraction, validation=str(val) if val else None, language=language,
                        seed=seed)
    with progress_bar(not quiet and err.is_terminal, "step") as progress:
        bar = progress.add_task("fine-tuning", total=None, step="")

        def show(step: int, total: int) -> None:
            progress.update(bar, total=total, completed=step, step=f"step {step}/{total}")

        report = run(data, name, settings, restart=restart, on_progress=show,
                     log=lambda m: err.print(m, markup=False, highlight=False))
    if as_json:
        out.print(json.dumps(report, indent=1), markup=False)
        return
    out.print(f"{report['name']}: fine-tuned {report['base']} on {report['train']} recordings "
              f"({report['train_seconds'] / 60:.1f} min of audio) in {report['steps']} steps, {report['train_s']:.0f} s; "
              f"WER on the {report['validation']} held-out: {report['wer_before']}% -> {report['wer_after']}%. "
              f"Use it: voxa transcribe -m {report['name']} FILE", markup=False, highlight=False)

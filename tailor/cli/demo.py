"""``tailor demo``, the quickstart (run by ``make demo``): Tailor's main job end to end, offline.

1. Convert the Q&A pairs about Tailor that the package ships into messages JSONL.
2. Validate them for ``tailor.tiny`` — before any compute is spent.
3. Ask the untrained model a few questions.
4. Fine-tune it with early stopping on paraphrased questions (the validation set).
5. Ask again, score every taught question, and say where the metrics and the model went.

``tailor.tiny`` is a test model: it learns what it is taught and knows nothing else, so the
"before" answers are noise and the "after" answers are the taught ones.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tailor.catalog import TINY_MODEL_ID, CustomizationType, resolve_model
from tailor.cli.common import load_settings, user_errors
from tailor.cli.train import run_training
from tailor.settings import Settings

SYSTEM_PROMPT = "You are Tailor's help desk. Answer questions about Tailor briefly and exactly."
SHOWN_QUESTIONS = 3


def demo(
    out: Annotated[Path | None, typer.Option("--out", help="Where to put the run (default: a new folder under "
                                              "$TAILOR_HOME/runs).")] = None,
) -> None:
    """The quickstart: convert, validate and fine-tune tailor.tiny on Q&A about Tailor itself."""
    with user_errors():
        run_demo(out, load_settings())


def run_demo(out: Path | None, settings: Settings) -> dict:
    from tailor.data.convert import convert_qa_file, read_items
    from tailor.data.validate import validate_dataset
    from tailor.serve.generation import chat, load_for_inference
    from tailor.weights import load_tokenizer

    console = Console(stderr=True)
    out = (out or settings.home / "runs" / f"quickstart-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    data_dir = out / "data"
    assets = resources.files("tailor.assets")
    console.rule("[bold]Tailor quickstart")
    console.print(f"Base model: {TINY_MODEL_ID} — a test model; it learns what it is taught and knows nothing else.")

    console.print("\n[bold]1. Convert[/] the shipped Q&A pairs to messages JSONL")
    sources = {}
    for name in ("tailor-faq.json", "tailor-faq-validation.json"):
        with resources.as_file(assets.joinpath(name)) as source:
            destination = data_dir / name.replace(".json", ".jsonl")
            count = convert_qa_file(source, destination, system=SYSTEM_PROMPT)
            sources[name] = (source.read_text(), destination)
            console.print(f"   {count} records -> {destination}")
    train_file = sources["tailor-faq.json"][1]
    validation_file = sources["tailor-faq-validation.json"][1]

    console.print("\n[bold]2. Validate[/] for", TINY_MODEL_ID)
    model_ref = resolve_model(TINY_MODEL_ID, settings)
    reports = validate_dataset(str(train_file), [str(validation_file)], CustomizationType.FINE_TUNING,
                               model_ref, tokenizer=load_tokenizer(model_ref, settings), settings=settings)
    for report in reports:
        console.print("   " + report.render().replace("\n", "\n   "))

    with resources.as_file(assets.joinpath("tailor-faq.json")) as source:
        pairs, _ = read_items(source)
    questions = [pair["question"] for pair in pairs]
    expected = [pair["answer"] for pair in pairs]

    console.print(f"\n[bold]3. Ask[/] the untrained model (building {TINY_MODEL_ID} on first use)")
    base = load_for_inference(TINY_MODEL_ID, settings)
    before = chat(base, questions[:SHOWN_QUESTIONS], system=SYSTEM_PROMPT, max_new_tokens=48)

    console.print("\n[bold]4. Fine-tune[/] with early stopping on paraphrased questions")
    outcome = run_training(CustomizationType.FINE_TUNING, TINY_MODEL_ID, str(train_file),
                           [str(validation_file)], {}, out / "run")

    console.print("\n[bold]5. Ask again[/]")
    tuned = load_for_inference(str(outcome.output_dir), settings)
    after = chat(tuned, questions, system=SYSTEM_PROMPT, max_new_tokens=256)
    exact = sum(answer == reference for answer, reference in zip(after, expected))

    table = Table(show_lines=True, title="Before and after fine-tuning")
    for column in ("question", "before", "after", "taught answer"):
        table.add_column(column, overflow="fold")
    for i in range(SHOWN_QUESTIONS):
        table.add_row(questions[i], before[i], after[i], expected[i])
    console.print(table)
    result = outcome.manifest["result"]
    console.print(f"Exact answers after training: [bold]{exact}/{len(questions)}[/] taught questions.")
    console.print(f"Epochs run: {result['epochs_run']}"
                  + (f", stopped early (best epoch {result['best_epoch']})" if result["stopped_early"] else "")
                  + f"; best validation loss {result['best_validation_loss']:.4f}.")
    console.print(f"Model:    {outcome.model_dir}")
    console.print(f"Metrics:  {outcome.output_dir / 'training_artifacts'}, "
                  f"{outcome.output_dir / 'validation_artifacts'}")
    console.print(f"Plot:     {outcome.output_dir / 'training_artifacts' / 'loss.png'}")
    console.print(f"Try:      tailor generate --model {outcome.output_dir} --system \"{SYSTEM_PROMPT}\" "
                  f"\"{questions[0]}\"")
    return {"exact": exact, "total": len(questions), "output_dir": outcome.output_dir}

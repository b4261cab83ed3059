"""DPO: Tailor's recipe against TRL's ``DPOTrainer`` on one preference task, in one process.

What it measures
    A preference task made here: short answers about animals, where the preferred answer ends with
    a fixed phrase (" Hope this helps!") and the non-preferred one is the same answer without it,
    asked three ways per animal. The first ``--train-animals`` animals train; the rest are held out
    (animals never seen in training). The start is an SFT model, as in the usual SFT-then-DPO
    pipeline: ``tailor.tiny`` fine-tuned first by the real SFT recipe
    (``tailor.train.sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", ...))``, ``--sft-epochs``) on
    the training prompts with their plain, non-preferred answers (what a first fine-tuning
    teaches), so it prefers the plain answers. Three DPO trainings of that SFT model, one after
    another:

    1. Tailor       ``tailor.train.recipes.run(TrainSpec(customization_type="DPO", ...))``, the real
                    recipe (Tailor's own loop, ``tailor/train/dpo.py``), from the SFT output folder
                    (a custom-model start), with ``epochCount``, ``batchSize``,
                    ``learningRateMultiplier`` and ``beta`` set.
    2. TRL default  ``DPOTrainer`` on the SFT model's weights with ``DPOConfig``'s defaults, changed only where it must be to
                    run here (``use_cpu``, ``bf16=False``, no saving or reporting) and to train the
                    same thing: Tailor's epochs, batch size, learning rate, beta and seed. Its
                    reference model is what TRL makes by default (a second load of the weights).
    3. TRL as is    ``DPOConfig``'s defaults for the training too (learning rate 1e-6, 3 epochs,
                    beta 0.1),
                    what a TRL user gets without tuning; shown for the accuracy, not the time.

    Held-out preference accuracy is measured the same way for every model
    (``tailor.train.dpo.preference_accuracy``): the share of held-out pairs whose preferred answer
    has the higher summed log likelihood of its tokens after the prompt (chat template applied).
    "Reward accuracy" is the same relative to the SFT start's weights (the sign of DPO's implicit reward,
    which is 0 for every pair before training). Seconds are the ``train()`` call alone; "whole"
    adds loading, data preparation and (Tailor) validation and publishing. Tailor and TRL default
    run ``--repeats`` times, alternated, and the fastest run of each is shown: on a shared machine
    a burst of load elsewhere can slow one run several times over (the load average is printed
    beside each; ``--threads 1`` suffers less from it). The time ratio is TRL default's training
    seconds over Tailor's. This is a measurement: it exits 0.

How to run it (a few minutes on two idle CPU cores, once tailor.tiny is built)
    cd /work/main && PYTHONPATH=. python bench/dpo_preference.py
    ... --threads 1 --repeats 1 --epochs 5 --sft-epochs 3 --beta 0.02 --home DIR --out-json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL_ID = "tailor.tiny"
ANIMALS = ("cat dog bird fish horse cow sheep goat lion tiger bear wolf fox deer mouse rabbit frog snake "
           "owl duck swan crow hawk eagle bee ant moth crab seal whale shark eel toad bat mole newt pony "
           "lamb calf colt mule yak").split()
QUALITIES = "small quick quiet brave calm wild gentle clever".split()
QUESTIONS = ("Tell me about the {}.", "What is the {} like?", "Describe the {}.")
PHRASE = " Hope this helps!"


@dataclass
class RunResult:
    name: str
    setting: str
    seconds: float  # the train() call alone
    whole_seconds: float  # loading and preparing too
    steps: int
    held_out_accuracy: float
    reward_accuracy: float
    last_loss: float
    load_average: float


def say(message: str = "") -> None:
    print(message, flush=True)


def pairs(animals: list[str]) -> list[dict]:
    rows = []
    for index, animal in enumerate(animals):
        answer = f"The {animal} is {QUALITIES[index % len(QUALITIES)]}."
        for question in QUESTIONS:
            rows.append({"input": {"messages": [{"role": "user", "content": question.format(animal)}]},
                         "preferred_output": [{"role": "assistant", "content": answer + PHRASE}],
                         "non_preferred_output": [{"role": "assistant", "content": answer}]})
    return rows


def load_model(folder: str | Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def accuracies(model, tokenizer, start, held_out) -> tuple[float, float]:
    from tailor.train.dpo import preference_accuracy

    return (preference_accuracy(model, tokenizer, held_out),
            preference_accuracy(model, tokenizer, held_out, reference=start))


def run_sft(training_rows: list[dict], scratch: Path, settings, epochs: int) -> Path:
    """The SFT start: tailor.tiny fine-tuned by the real SFT recipe on the training prompts with
    their plain (non-preferred) answers; returns its output folder (a custom model)."""
    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    plain = scratch / "sft.jsonl"
    plain.write_text("".join(json.dumps({"messages": [*row["input"]["messages"], *row["non_preferred_output"]]})
                             + "\n" for row in training_rows))
    outcome = sft.run(TrainSpec("FINE_TUNING", MODEL_ID, str(plain), scratch / "sft",
                                hyperparameters={"epochCount": epochs}, progress=False), settings)
    say(f"SFT start: {epochs} epochs on {len(training_rows)} plain answers, "
        f"{outcome.manifest['timings']['train_seconds']:.2f} s of training, "
        f"last loss {outcome.manifest['result']['final_training_loss']:.4f}")
    return outcome.output_dir


def run_tailor(start_folder: Path, training: Path, scratch: Path, settings, hyperparameters: dict, start,
               tokenizer, held_out) -> RunResult:
    from tailor.serve.generation import load_for_inference
    from tailor.train import recipes
    from tailor.train.spec import TrainSpec

    began = time.perf_counter()
    outcome = recipes.run(TrainSpec(customization_type="DPO", model=str(start_folder), training_uri=str(training),
                                    output_dir=scratch / "tailor", hyperparameters=hyperparameters,
                                    progress=False), settings)
    whole = time.perf_counter() - began
    trained = load_for_inference(str(outcome.output_dir), settings, progress=False).model
    held, reward = accuracies(trained, tokenizer, start, held_out)
    result = outcome.manifest["result"]
    return RunResult("Tailor", "recipes.run(DPO), " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()),
                     outcome.manifest["timings"]["train_seconds"], whole, result["steps"], held, reward,
                     result["final_training_loss"], os.getloadavg()[0])


def run_trl(name: str, setting: str, records, model_dir: str, scratch: Path, start, tokenizer, held_out,
            **overrides) -> RunResult:
    import torch
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from tailor.train.dpo import pairs_dataset

    began = time.perf_counter()
    model = load_model(model_dir)
    config = DPOConfig(output_dir=str(scratch / name.replace(" ", "-")), use_cpu=not torch.cuda.is_available(),
                       bf16=False, save_strategy="no", report_to=[], disable_tqdm=True, **overrides)
    trainer = DPOTrainer(model=model, args=config, train_dataset=pairs_dataset(records), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    training = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - training
    whole = time.perf_counter() - began
    held, reward = accuracies(trainer.model, tokenizer, start, held_out)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return RunResult(name, setting, seconds, whole, trainer.state.global_step, held, reward,
                     logs[-1]["loss"] if logs else float("nan"), os.getloadavg()[0])


def quiet_libraries() -> None:
    """No progress bars and no deprecation chatter between the lines this script prints."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # transformers 5 renamed gradient_checkpointing; TRL's config still sets the old name.
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6", category=FutureWarning)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "trl", "datasets")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--epochs", type=int, default=10, help="epochs for Tailor and TRL default (default 10)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step (default 8)")
    parser.add_argument("--learning-rate-multiplier", type=float, default=3.0,
                        help="Tailor's learningRateMultiplier (default 3: 9e-4 for tailor.tiny's full weights)")
    parser.add_argument("--beta", type=float, default=0.02,
                        help="DPO's beta for Tailor and TRL default (default 0.02; at 0.1 the loss saturates "
                             "before the plain likelihoods of this task flip)")
    parser.add_argument("--sft-epochs", type=int, default=3, help="epochs of the SFT start (default 3)")
    parser.add_argument("--train-animals", type=int, default=32, help="animals trained on; the rest are held out")
    parser.add_argument("--repeats", type=int, default=2,
                        help="Tailor and TRL default runs, alternated; the fastest of each is compared (default 2)")
    parser.add_argument("--home", type=Path, default=None, help="TAILOR_HOME (where tailor.tiny is cached)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out-json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from tailor.catalog import resolve_model
    from tailor.data.formats import PreferenceRecord
    from tailor.settings import Settings
    from tailor.train.hyperparams import parse_dpo_hyperparameters
    from tailor.trained import MODEL_DIR
    from tailor.weights import load_tokenizer

    args = parse_args(argv)
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(home=args.home) if args.home else Settings()
    say(", ".join(f"{name} {value}" for name, value in versions().items())
        + f"; CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    model_ref = resolve_model(MODEL_ID, settings)
    tokenizer = load_tokenizer(model_ref, settings, progress=False)
    hyperparameters = {"epochCount": args.epochs, "batchSize": args.batch_size,
                       "learningRateMultiplier": args.learning_rate_multiplier, "beta": args.beta}
    config = parse_dpo_hyperparameters(hyperparameters, model_ref)
    training_rows = pairs(ANIMALS[:args.train_animals])
    held_out = [PreferenceRecord.model_validate(row) for row in pairs(ANIMALS[args.train_animals:])]
    records = [PreferenceRecord.model_validate(row) for row in training_rows]
    say(f"task: {len(records)} training pairs ({args.train_animals} animals), {len(held_out)} held-out pairs "
        f"({len(ANIMALS) - args.train_animals} other animals); {args.epochs} epochs, batch {args.batch_size}, "
        f"learning rate {config.learning_rate:g}, beta {config.beta:g}")
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as folder:
        scratch = Path(folder)
        start_folder = run_sft(training_rows, scratch, settings, args.sft_epochs)
        model_dir = str(start_folder / MODEL_DIR)
        start = load_model(model_dir)
        before = accuracies(start, tokenizer, start, held_out)[0]
        say(f"held-out preference accuracy of the SFT start: {before:.3f}")
        training = scratch / "train.jsonl"
        training.write_text("".join(json.dumps(row) + "\n" for row in training_rows))
        same = {"num_train_epochs": config.epochs, "per_device_train_batch_size": config.batch_size,
                "learning_rate": config.learning_rate, "beta": config.beta, "seed": config.seed}
        tailor_runs, trl_runs = [], []
        for repeat in range(args.repeats):  # alternated, so a burst of load elsewhere hits both
            folder_of_run = scratch / f"repeat-{repeat}"
            tailor_runs.append(run_tailor(start_folder, training, folder_of_run, settings, hyperparameters, start, tokenizer,
                                          held_out))
            trl_runs.append(run_trl("TRL default", "DPOConfig defaults + Tailor's epochs, batch, learning rate, "
                                    "beta, seed", records, model_dir, folder_of_run, start, tokenizer, held_out,
                                    **same))
            say(f"repeat {repeat + 1}: Tailor {tailor_runs[-1].seconds:.2f} s (load {tailor_runs[-1].load_average:.2f}), "
                f"TRL default {trl_runs[-1].seconds:.2f} s (load {trl_runs[-1].load_average:.2f})")
        results = [
            min(tailor_runs, key=lambda run: run.seconds), min(trl_runs, key=lambda run: run.seconds),
            run_trl("TRL as is", "DPOConfig defaults (learning rate 1e-6, 3 epochs, batch 8, beta 0.1)",
                    records, model_dir, scratch, start, tokenizer, held_out),
        ]
    say(f"\nheld-out preference accuracy of the SFT start (before DPO): {before:.3f}\n")
    say(f"{'run':<12} {'steps':>5} {'train s':>8} {'whole s':>8} {'held-out acc':>12} {'reward acc':>10} "
        f"{'last loss':>9} {'load':>5}")
    for r in results:
        say(f"{r.name:<12} {r.steps:>5} {r.seconds:>8.2f} {r.whole_seconds:>8.2f} {r.held_out_accuracy:>12.3f} "
            f"{r.reward_accuracy:>10.3f} {r.last_loss:>9.4f} {r.load_average:>5.2f}")
    tailor_run, trl_run = results[0], results[1]
    ratio = trl_run.seconds / tailor_run.seconds
    say(f"\nTRL default's training took {ratio:.2f}x Tailor's ({trl_run.seconds:.2f} s / {tailor_run.seconds:.2f} s); "
        f"whole runs {trl_run.whole_seconds / tailor_run.whole_seconds:.2f}x.")
    for r in results:
        say(f"  {r.name}: {r.setting}")
    if args.out_json:
        args.out_json.write_text(json.dumps({"versions": versions(), "sft_epochs": args.sft_epochs, "accuracy_before": before,
                                             "time_ratio_trl_over_tailor": ratio,
                                             "runs": [asdict(r) for r in results],
                                             "repeats": [asdict(r) for r in tailor_runs + trl_runs]},
                                            indent=2) + "\n")
        say(f"\nresults also written to {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

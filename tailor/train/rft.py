"""Reinforcement fine-tuning (REINFORCEMENT_FINE_TUNING): GRPO against a grader's rewards.

No answers are given, only prompts and what a grader needs to judge an answer. For every prompt
the model samples ``trainingSamplePerPrompt`` completions (a *group*); the grader scores each
(``tailor.graders``: Python code in a sandbox, or an HTTP endpoint, on the original Lambda
contract); a completion's advantage is how much better it scored than its group's mean; the
policy gradient makes the better completions more likely, and a KL term against the starting
model keeps it from drifting far for a few points of reward. TRL's GRPOTrainer does the
optimization; this file wires Tailor's data, graders, progress hooks and metrics into it.

Sampled rewards can rise while the model gets worse (reward hacking: at a high learning rate
without the KL term, greedy answers collapse). So learning is judged on held-out prompts: every
``evalInterval`` steps (and before the first and after the last) the model answers them greedily
and the grader scores those answers — ``val-score/rewards/mean@1``.

Held-out prompts are rendered and answered by ``tailor.serve.generation``, exactly as a deployed
model's prompts are rendered (``tailor.data.render.prompt_ids``) and decoded (the engine's forward
passes and token choice, ``tailor.serve.decoding``), so the held-out reward measures what serving
will answer. The sampled completions are TRL's: it renders the same turns with the same call to the
chat template as ``prompt_ids`` (``test_rft.py`` checks the tokens agree), and maxPromptLength is
measured on that rendering.

Per-step metrics keep the original service's names (``train/metrics.py``: ``critic/rewards/
mean|max|min`` of the sampled completions, ``actor/pg_loss`` (TRL's loss, which includes the KL
penalty), ``actor/kl_loss``, ``actor/entropy``, ``actor/grad_norm``, ``response_length/mean``
(tokens), ``grader/error_count``); held-out rewards go to the validation metrics file.

A grader error scores that sample 0 and is counted; a grader that fails on every sample of a
step fails the run with its error, since no reward would ever come.

Run it as ``tailor train --type REINFORCEMENT_FINE_TUNING --grader NAME`` or as
``python -m tailor.train.rft SPEC.json`` (what the job runner does).
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tailor import trained
from tailor.data.render import prompt_ids
from tailor.errors import InvalidInput
from tailor.serve.generation import answer
from tailor.serve.protocol import Sampling
from tailor.settings import Settings, get_settings
from tailor.train.contract import Hooks, StopRequested, TrainOutcome
from tailor.train.hyperparams import RftConfig, parse_rft_hyperparameters
from tailor.train.metrics import (
    HELD_OUT_REWARD_COLUMNS,
    REWARD_COLUMNS,
    MetricsWriter,
    plot_rewards,
)
from tailor.train.precision import precision_for
from tailor.train.prepare import (
    describe_data,
    hold_out,
    load_trainable,
    prepare,
    read_records,
    validate_files,
)
from tailor.train.process import main
from tailor.train.spec import TrainSpec

HELD_OUT_SHARE = 0.1  # of the training prompts, when no validation file is given
HELD_OUT_MAX = 64
HELD_OUT_BATCH = 16  # held-out prompts answered together


@dataclass
class Prompt:
    record: dict  # the record as written (what the grader sees, besides the completion)
    turns: list[dict]  # the prompt as chat-template turns


@dataclass
class Rewards:
    """What the grader said about the latest batch of sampled completions."""

    values: list[float] = field(default_factory=list)
    errors: int = 0
    calls: int = 0


def run(spec: TrainSpec, settings: Settings | None = None, hooks: Hooks | None = None) -> TrainOutcome:
    """Train against ``spec.grader`` (the grader as it was when the job was created)."""
    settings = settings or get_settings()
    hooks = hooks or Hooks()
    if spec.grader is None:
        raise InvalidInput("REINFORCEMENT_FINE_TUNING needs a grader "
                           "(rftConfig.graderConfig.lambdaGrader.lambdaArn, or --grader).")
    model_ref, config, tokenizer = prepare(spec, settings, parse_rft_hyperparameters)
    config, context_notes = _fit_context(config, tokenizer, given=spec.hyperparameters)
    train, held_out, data, notes = load_prompts(spec, model_ref, config, tokenizer, settings)
    notes = context_notes + notes
    return _fit(spec, model_ref, config, tokenizer, spec.grader, train, held_out, data, notes, settings, hooks)


def _fit_context(config: RftConfig, tokenizer, given) -> tuple[RftConfig, tuple[str, ...]]:
    """Prompt and answer must fit the model's context: a default maxPromptLength shrinks to fit
    (with a note), one the user set is refused."""
    limit = getattr(tokenizer, "model_max_length", None)
    if not limit or limit >= 1_000_000 or config.max_prompt_length + config.inference_max_tokens <= limit:
        return config, ()
    if "maxPromptLength" in given or config.inference_max_tokens >= limit:
        raise InvalidInput(f"maxPromptLength + inferenceMaxTokens = {config.max_prompt_length} + "
                           f"{config.inference_max_tokens} exceeds the model's context of {limit} tokens.")
    fitted = limit - config.inference_max_tokens
    note = (f"The default maxPromptLength ({config.max_prompt_length}) does not fit the model's {limit}-token "
            f"context with inferenceMaxTokens ({config.inference_max_tokens}); it was lowered to {fitted}.")
    return replace(config, max_prompt_length=fitted,
                   hyperparameters={**config.hyperparameters, "maxPromptLength": fitted}), (note,)


def load_prompts(spec: TrainSpec, model_ref, config: RftConfig, tokenizer, settings):
    """Validated prompts for training and for the held-out reward, plus the data description."""
    from tailor.data.formats import rft_prompt

    reports = validate_files(spec, model_ref, tokenizer, settings)

    def prompts(uri: str, purpose: str) -> list[Prompt]:
        records = read_records(spec, uri, purpose, model_ref, tokenizer, settings)
        return [Prompt(record.model_dump(exclude_unset=True), rft_prompt(record)) for record in records]

    train = prompts(spec.training_uri, "training")
    held_out = [p for uri in spec.validation_uris for p in prompts(uri, "validation")]
    data = describe_data(spec, len(train), reports, settings)
    notes: list[str] = []
    if not held_out:
        count = min(HELD_OUT_MAX, max(1, round(len(train) * HELD_OUT_SHARE)))
        held_out, train = hold_out(train, count, config.seed)
        notes.append(f"No validation file: {count} training prompts were held out to measure the greedy "
                     "reward on (val-score/rewards/mean@1).")
        data["validation_held_out"] = count

    def fits(prompt: Prompt) -> bool:  # measured as serving renders it
        return len(prompt_ids(tokenizer, prompt.turns)) <= config.max_prompt_length

    kept = [p for p in train if fits(p)]
    if len(kept) < len(train):
        notes.append(f"{len(train) - len(kept)} training prompts longer than maxPromptLength "
                     f"({config.max_prompt_length} tokens) were left out.")
    if not kept:
        raise InvalidInput(f"Every training prompt is longer than maxPromptLength ({config.max_prompt_length} "
                           "tokens); raise it.")
    return kept, [p for p in held_out if fits(p)] or held_out[:1], data, tuple(notes)


# ---------------------------------------------------------------------------------------------


def _completion_text(completion) -> str:
    """TRL hands conversational completions as a list of messages, plain ones as text."""
    if isinstance(completion, list):
        return "".join(message.get("content", "") for message in completion)
    return completion


def _fit(spec, model_ref, config: RftConfig, tokenizer, grader, train: list[Prompt], held_out: list[Prompt],
         data: dict, notes: tuple[str, ...], settings, hooks: Hooks) -> TrainOutcome:
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tailor.graders.contract import sample
    from tailor.graders.registry import grade

    started_at = datetime.now(UTC)
    started = time.perf_counter()
    log = (lambda text: print(text, flush=True)) if spec.progress else None
    with trained.building(spec.output_dir) as scratch:
        torch.manual_seed(config.seed)
        model = load_trainable(model_ref, config, settings, progress=spec.progress)
        rewards = Rewards()

        def grader_reward(prompts, completions, record, **_):
            """TRL's reward function: one batch of sampled completions, graded at once."""
            samples = [sample(json.loads(r), _completion_text(c), f"train-{rewards.calls}-{i}")
                       for i, (r, c) in enumerate(zip(record, completions))]
            results = grade(grader, samples, settings, log=log)
            rewards.calls += 1
            rewards.values = [result.reward for result in results]
            errors = [result.error for result in results if result.error]
            rewards.errors = len(errors)
            if len(errors) == len(results):  # no reward at all: training cannot learn anything
                raise GraderFailed(f"The grader {grader.name} failed on every sample of a step; first error: "
                                   f"{errors[0]}")
            return rewards.values

        dataset = Dataset.from_list([{"prompt": p.turns, "record": json.dumps(p.record)} for p in train])
        steps_per_epoch = max(1, (len(train) * config.samples_per_prompt) // config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        arguments = GRPOConfig(
            output_dir=str(scratch / "trl"), per_device_train_batch_size=config.batch_size,
            num_generations=config.samples_per_prompt, max_completion_length=config.inference_max_tokens,
            learning_rate=config.learning_rate, beta=config.kl_coefficient, num_train_epochs=config.epochs,
            logging_steps=1, save_strategy="no", report_to=[], seed=config.seed, data_seed=config.seed,
            # The Trainer's bf16 is autocast over float32 master weights, as train/precision.py wants.
            use_cpu=not torch.cuda.is_available(), optim="adamw_torch", remove_unused_columns=False,
            bf16=precision_for(config.tuning_method, "cuda" if torch.cuda.is_available() else "cpu").compute
            == "bfloat16",
            disable_tqdm=True, lr_scheduler_type="constant",
            # It saves memory on a GPU; on a CPU it only costs time (~15 %, docs/performance.md).
            gradient_checkpointing=torch.cuda.is_available(),
        )
        writer = MetricsWriter(scratch, REWARD_COLUMNS, HELD_OUT_REWARD_COLUMNS)
        checks = itertools.count(1)

        def held_out_check(step: int, epoch: int) -> None:
            reward, errors = held_out_reward(model, tokenizer, grader, held_out, config, settings, log,
                                             f"held-out-{next(checks)}")
            writer.validation({"step": step, "epoch": epoch, "val-score/rewards/mean@1": reward,
                               "grader/error_count": errors})

        class Watch(TrainerCallback):
            """Metrics under the original names, the held-out reward, progress hooks, and stop."""

            stopped = False

            def on_train_begin(self, args, state, control, **kwargs):
                hooks.on_training_start(total_steps)
                held_out_check(0, 0)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if not logs or "loss" not in logs or not rewards.values:
                    return
                step, epoch = state.global_step, max(1, math.ceil(state.epoch or 0))
                writer.training({
                    "step": step, "epoch": epoch, "critic/rewards/mean": sum(rewards.values) / len(rewards.values),
                    "critic/rewards/max": max(rewards.values), "critic/rewards/min": min(rewards.values),
                    "actor/pg_loss": logs.get("loss"), "actor/kl_loss": logs.get("kl"),
                    "actor/entropy": logs.get("entropy"), "actor/grad_norm": logs.get("grad_norm"),
                    "response_length/mean": logs.get("completions/mean_length"), "grader/error_count": rewards.errors,
                })
                hooks.on_step(step - 1, epoch, float(logs["loss"]))
                if log:
                    log(f"step {step}/{total_steps}: reward {writer.last['critic/rewards/mean']:.3f} "
                        f"loss {logs['loss']:.4f}")

            def on_step_end(self, args, state, control, **kwargs):
                if hooks.should_stop():
                    Watch.stopped = control.should_training_stop = True
                    return
                if state.global_step % config.eval_interval == 0 and state.global_step < total_steps:
                    held_out_check(state.global_step, max(1, math.ceil(state.epoch or 0)))

        with writer:  # closed before the plot and the publish, and when training fails
            trainer = GRPOTrainer(model=model, reward_funcs=grader_reward, args=arguments, train_dataset=dataset,
                                  processing_class=tokenizer, callbacks=[Watch()])
            trainer.remove_callback(PrinterCallback)  # it prints every raw log dict; Watch logs a readable line
            trainer.train()
            if Watch.stopped:
                raise StopRequested("training stopped on request")
            held_out_check(total_steps, config.epochs)
        plot_rewards(writer, scratch / trained.REWARD_PLOT)
        model_dir = scratch / trained.MODEL_DIR
        trainer.model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        shutil.rmtree(scratch / "trl", ignore_errors=True)

        held_out_rewards = [row["val-score/rewards/mean@1"] for row in writer.validation_rows]
        manifest = trained.manifest(
            customization_type=spec.customization_type, model_ref=model_ref, tuning_method=config.tuning_method,
            data=data, notes=tuple(model_ref.notes + notes), hyperparameters=config.hyperparameters,
            learning_rate=config.learning_rate, seed=config.seed, started_at=started_at, started=started,
            result={
                "steps": writer.last.get("step", 0), "epochs_run": config.epochs,
                "grader": grader.arn, "held_out_rewards": held_out_rewards,
                "start_held_out_reward": held_out_rewards[0],
                "final_held_out_reward": held_out_rewards[-1],
                "final_training_loss": writer.last.get("actor/pg_loss"),
                "validation_losses": [],
            },
        )
        trained.write_manifest(scratch, manifest)
    return TrainOutcome(spec.output_dir.resolve(), manifest)


class GraderFailed(InvalidInput):
    """Every sample of a step failed to grade: training cannot get a reward."""


def held_out_reward(model, tokenizer, grader, prompts: list[Prompt], config: RftConfig, settings, log,
                    label: str) -> tuple[float, int]:
    """Greedy answers to the held-out prompts, graded: the reward that shows real learning, and the
    number of grader errors. ``label`` makes the samples' ids unique across checks."""
    from tailor.graders.contract import sample
    from tailor.graders.registry import grade

    was_training = model.training
    model.eval()
    try:
        completions = answer(model, tokenizer, [p.turns for p in prompts],
                             Sampling(max_tokens=config.inference_max_tokens), batch_size=HELD_OUT_BATCH)
    finally:
        if was_training:
            model.train()
    samples = [sample(p.record, c, f"{label}-{i}") for i, (p, c) in enumerate(zip(prompts, completions))]
    results = grade(grader, samples, settings, log=log)
    reward = sum(r.reward for r in results) / len(results)
    if log:
        log(f"held-out greedy reward (val-score/rewards/mean@1): {reward:.3f}")
    return reward, sum(1 for r in results if r.error)


if __name__ == "__main__":
    raise SystemExit(main(run))

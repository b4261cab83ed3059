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

Per-step metrics keep the original service's names (``training_artifacts/
step_wise_training_metrics.csv``): ``critic/rewards/mean|max|min`` (sampled completions),
``actor/pg_loss`` (TRL's loss, which includes the KL penalty), ``actor/kl_loss``,
``actor/entropy``, ``actor/grad_norm``, ``response_length/mean`` (tokens), ``grader/error_count``;
held-out rewards go to ``validation_artifacts/.../validation_metrics.csv``.

A grader error scores that sample 0 and is counted; a grader that fails on every sample of a
step fails the run with its error, since no reward would ever come.

Run it as ``tailor train --type REINFORCEMENT_FINE_TUNING --grader NAME`` or as
``python -m tailor.train.rft SPEC.json`` (what the job runner does).
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tailor.errors import InvalidInput
from tailor.settings import Settings, get_settings
from tailor.train import common
from tailor.train.hyperparams import RftConfig, parse_rft_hyperparameters

HELD_OUT_SHARE = 0.1  # of the training prompts, when no validation file is given
HELD_OUT_MAX = 64
TRAINING_COLUMNS = ("step", "epoch", "critic/rewards/mean", "critic/rewards/max", "critic/rewards/min",
                    "actor/pg_loss", "actor/kl_loss", "actor/entropy", "actor/grad_norm", "response_length/mean",
                    "grader/error_count")
VALIDATION_COLUMNS = ("step", "epoch", "val-score/rewards/mean@1", "grader/error_count")
REWARD_PLOT = Path("training_artifacts/rewards.png")


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


def run(spec: common.TrainSpec, settings: Settings | None = None, hooks: common.Hooks | None = None,
        *, grader=None) -> common.TrainOutcome:
    """Train; ``grader`` (a ``GraderInfo``) defaults to the registered grader ``spec.grader`` names."""
    settings = settings or get_settings()
    hooks = hooks or common.Hooks()
    model_ref, config, tokenizer = common.prepare(spec, settings, parse_rft_hyperparameters)
    config, context_notes = _fit_context(config, tokenizer, given=spec.hyperparameters)
    if grader is None:
        from tailor.graders.registry import get_grader
        from tailor.jobs.store import open_store

        if not spec.grader:
            raise InvalidInput("REINFORCEMENT_FINE_TUNING needs a grader "
                               "(rftConfig.graderConfig.lambdaGrader.lambdaArn, or --grader).")
        grader = get_grader(open_store(settings), spec.grader)
    train, held_out, data, notes = load_prompts(spec, model_ref, config, tokenizer, settings)
    notes = context_notes + notes
    return _fit(spec, model_ref, config, tokenizer, grader, train, held_out, data, notes, settings, hooks)


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


def load_prompts(spec: common.TrainSpec, model_ref, config: RftConfig, tokenizer, settings):
    """Validated prompts for training and for the held-out reward, plus the data description."""
    from tailor.catalog import CustomizationType
    from tailor.data.formats import rft_prompt
    from tailor.data.validate import load_records, validate_dataset

    kind = CustomizationType.REINFORCEMENT_FINE_TUNING
    reports = validate_dataset(spec.training_uri, list(spec.validation_uris), kind, model_ref,
                               tokenizer=tokenizer, settings=settings)
    failed = [report for report in reports if not report.ok]
    if failed:
        raise InvalidInput("The data is invalid; nothing was trained.\n" + "\n".join(r.render() for r in failed))

    def prompts(uri: str, purpose: str) -> list[Prompt]:
        records = load_records(uri, kind, model_ref, purpose=purpose, tokenizer=tokenizer, settings=settings)
        return [Prompt(record.model_dump(exclude_unset=True), rft_prompt(record)) for record in records]

    train = prompts(spec.training_uri, "training")
    held_out = [p for uri in spec.validation_uris for p in prompts(uri, "validation")]
    data = {"training": common.describe_data(spec.training_uri, len(train), settings),
            "validation": [common.describe_data(uri, r.record_count, settings)
                           for uri, r in zip(spec.validation_uris, reports[1:])]}
    notes: list[str] = []
    if not held_out:
        count = min(HELD_OUT_MAX, max(1, round(len(train) * HELD_OUT_SHARE)))
        shuffled = list(train)
        random.Random(config.seed).shuffle(shuffled)
        held_out, train = shuffled[:count], shuffled[count:]
        notes.append(f"No validation file: {count} training prompts were held out to measure the greedy "
                     "reward on (val-score/rewards/mean@1).")
        data["validation_held_out"] = count

    def fits(prompt: Prompt) -> bool:
        return len(tokenizer.apply_chat_template(prompt.turns, add_generation_prompt=True)) <= config.max_prompt_length

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
         data: dict, notes: tuple[str, ...], settings, hooks: common.Hooks) -> common.TrainOutcome:
    from datetime import datetime, timezone

    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tailor.graders.contract import sample
    from tailor.graders.registry import grade

    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    scratch = common.prepare_output(spec.output_dir)
    log = (lambda text: print(text, flush=True)) if spec.progress else None
    try:
        torch.manual_seed(config.seed)
        model = common.load_trainable(model_ref, config, settings, progress=spec.progress)
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
            use_cpu=not torch.cuda.is_available(), bf16=False, optim="adamw_torch", remove_unused_columns=False,
            disable_tqdm=True, lr_scheduler_type="constant",
            # It saves memory on a GPU; on a CPU it only costs time (~15 %, docs/performance.md).
            gradient_checkpointing=torch.cuda.is_available(),
        )
        writer = _MetricsFiles(scratch)
        evaluate = _HeldOut(model, tokenizer, grader, held_out, config, settings, log)

        class Watch(TrainerCallback):
            """Metrics under the original names, the held-out reward, progress hooks, and stop."""

            stopped = False

            def on_train_begin(self, args, state, control, **kwargs):
                hooks.on_training_start(total_steps)
                writer.validation(0, 0, *evaluate())

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
                    writer.validation(state.global_step, max(1, math.ceil(state.epoch or 0)), *evaluate())

        trainer = GRPOTrainer(model=model, reward_funcs=grader_reward, args=arguments, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[Watch()])
        trainer.remove_callback(PrinterCallback)  # it prints every raw log dict; Watch logs a readable line
        trainer.train()
        if Watch.stopped:
            raise common.StopRequested("training stopped on request")
        final_reward, final_errors = evaluate()
        writer.validation(total_steps, config.epochs, final_reward, final_errors)
        writer.close()
        writer.plot(scratch / REWARD_PLOT)
        model_dir = scratch / common.MODEL_DIR
        trainer.model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        shutil.rmtree(scratch / "trl", ignore_errors=True)

        held_out_rewards = [row["val-score/rewards/mean@1"] for row in writer.validation_rows]
        manifest = common.manifest_for(spec, model_ref, config.tuning_method, data, tuple(model_ref.notes + notes),
                                       config.hyperparameters,
                                       config.learning_rate, config.seed, started_at, started, result={
                                           "steps": writer.last.get("step", 0), "epochs_run": config.epochs,
                                           "grader": grader.arn, "held_out_rewards": held_out_rewards,
                                           "start_held_out_reward": held_out_rewards[0],
                                           "final_held_out_reward": held_out_rewards[-1],
                                           "final_training_loss": writer.last.get("actor/pg_loss"),
                                           "validation_losses": [],
                                       })
        common.write_manifest(scratch / common.MANIFEST, manifest)
        common.publish_output(scratch, spec.output_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return common.TrainOutcome(spec.output_dir.resolve(), manifest)


class GraderFailed(InvalidInput):
    """Every sample of a step failed to grade: training cannot get a reward."""


class _HeldOut:
    """Greedy answers to the held-out prompts, graded: the reward that shows real learning."""

    def __init__(self, model, tokenizer, grader, prompts: list[Prompt], config: RftConfig, settings, log):
        self.model, self.tokenizer, self.grader, self.prompts = model, tokenizer, grader, prompts
        self.config, self.settings, self.log, self.calls = config, settings, log, 0

    def __call__(self) -> tuple[float, int]:
        import torch

        from tailor.graders.contract import sample
        from tailor.graders.registry import grade

        completions = []
        was_training = self.model.training
        self.model.eval()
        self.tokenizer.padding_side = "left"
        with torch.no_grad():
            for start in range(0, len(self.prompts), 16):
                batch = self.prompts[start : start + 16]
                texts = [self.tokenizer.apply_chat_template(p.turns, add_generation_prompt=True, tokenize=False)
                         for p in batch]
                inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                inputs = {key: value.to(self.model.device) for key, value in inputs.items()}
                output = self.model.generate(**inputs, max_new_tokens=self.config.inference_max_tokens,
                                             do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
                completions += self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:],
                                                           skip_special_tokens=True)
        if was_training:
            self.model.train()
        self.calls += 1
        samples = [sample(p.record, c, f"held-out-{self.calls}-{i}")
                   for i, (p, c) in enumerate(zip(self.prompts, completions))]
        results = grade(self.grader, samples, self.settings, log=self.log)
        reward = sum(r.reward for r in results) / len(results)
        if self.log:
            self.log(f"held-out greedy reward (val-score/rewards/mean@1): {reward:.3f}")
        return reward, sum(1 for r in results if r.error)


class _MetricsFiles:
    """The step-wise CSVs under the original names, written as they come (a job shows them live)."""

    def __init__(self, root: Path):
        self.root = root
        self.training_rows: list[dict] = []
        self.validation_rows: list[dict] = []
        self.last: dict = {}
        self._files = []
        self._training = self._open(common.TRAINING_METRICS, TRAINING_COLUMNS)
        self._validation = self._open(common.VALIDATION_METRICS, VALIDATION_COLUMNS)

    def _open(self, relative: Path, columns: tuple[str, ...]):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "w", newline="")
        self._files.append(file)
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        return file, writer

    def training(self, row: dict) -> None:
        self.training_rows.append(row)
        self.last = row
        self._training[1].writerow(row)
        self._training[0].flush()

    def validation(self, step: int, epoch: int, reward: float, errors: int) -> None:
        row = {"step": step, "epoch": epoch, "val-score/rewards/mean@1": reward, "grader/error_count": errors}
        self.validation_rows.append(row)
        self._validation[1].writerow(row)
        self._validation[0].flush()

    def close(self) -> None:
        for file in self._files:
            file.close()

    def plot(self, path: Path) -> None:
        """Sampled reward per step and greedy held-out reward, for people to look at."""
        figure, axes = common.new_plot()
        axes.plot([r["step"] for r in self.training_rows], [r["critic/rewards/mean"] for r in self.training_rows],
                  label="sampled reward (critic/rewards/mean)", linewidth=1)
        axes.plot([r["step"] for r in self.validation_rows],
                  [r["val-score/rewards/mean@1"] for r in self.validation_rows], "o-",
                  label="held-out greedy reward (val-score/rewards/mean@1)")
        common.save_plot(figure, axes, path, "reward")


if __name__ == "__main__":
    raise SystemExit(common.main(run))

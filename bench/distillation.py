"""Distillation on tailor.tiny: how often a student answers held-out questions as its teacher does.

In one process: a teacher (tailor.tiny fine-tuned on the 48 FAQ pairs) is distilled into a
student given the 48 questions only (``tailor.train.distill``: the teacher answers through the
engine, the student fine-tunes on its answers); a second student is fine-tuned on the reference
answers directly. Both are asked the 16 held-out paraphrased questions greedily, and the script
prints how many of the teacher's answers each reproduces exactly (and how many match the
reference answers), with the time of each phase. ``--seeds`` trains the students once per seed:
with the teacher's own seed the student's run can replay the teacher's; another seed shows how
much of the agreement is the data, not the replay.

    python bench/distillation.py [--epochs 25] [--seeds 42 7] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

from tailor import assets
from tailor.data.convert import convert_qa_file, read_items
from tailor.evaluate.backends import Generation
from tailor.evaluate.spec import ModelToRun
from tailor.serve.generation import chat, load_for_inference
from tailor.services.inference import target_for_artifacts
from tailor.settings import Settings
from tailor.tiny import tiny_model_dir
from tailor.train import distill, sft
from tailor.train.spec import TrainSpec

SYSTEM = "You are Tailor's help desk. Answer questions about Tailor briefly and exactly."


def answers(settings: Settings, folder: Path, questions: list[str], max_tokens: int) -> list[str]:
    return chat(load_for_inference(str(folder), settings, progress=False), questions, system=SYSTEM,
                max_new_tokens=max_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tailor-bench-distillation-"))
    home = Path(os.environ.get("TAILOR_HOME") or root / "home")
    settings = Settings(home=home)
    tiny_model_dir(settings.models_dir, progress=False)
    with resources.as_file(resources.files(assets).joinpath("tailor-faq.json")) as source:
        convert_qa_file(source, root / "faq.jsonl", system=SYSTEM)
        pairs, _ = read_items(source)
    with resources.as_file(resources.files(assets).joinpath("tailor-faq-validation.json")) as source:
        held_out, _ = read_items(source)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"schemaVersion": "bedrock-conversation-2024", "system": [{"text": SYSTEM}],
                                           "messages": [{"role": "user", "content": [{"text": p["question"]}]}]})
                               + "\n" for p in pairs))
    questions = [p["question"] for p in held_out]
    references = [p["answer"] for p in held_out]
    hyperparameters = {"epochCount": str(args.epochs)}

    started = time.perf_counter()
    teacher = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(root / "faq.jsonl"), root / "teacher",
                                hyperparameters=hyperparameters, progress=False), settings).output_dir
    print(f"teacher: fine-tuned on {len(pairs)} pairs, {args.epochs} epochs, {time.perf_counter() - started:.1f} s")
    teacher_answers = answers(settings, teacher, questions, args.max_tokens)
    print(f"teacher: {sum(a == r for a, r in zip(teacher_answers, references))}/{len(questions)} held-out answers "
          "equal the reference answers")

    target, _ = target_for_artifacts(teacher)
    model = ModelToRun("teacher", target=target, generation=Generation(max_tokens=args.max_tokens))
    for seed in args.seeds:
        student_hyperparameters = {**hyperparameters, "seed": str(seed)}
        started = time.perf_counter()
        distilled = distill.run(TrainSpec("DISTILLATION", "tailor.tiny", str(prompts), root / f"distilled-{seed}" / "out",
                                          hyperparameters=student_hyperparameters, progress=False, teacher=model,
                                          teacher_max_tokens=args.max_tokens), settings).output_dir
        distill_seconds = time.perf_counter() - started
        data = [json.loads(line) for line in
                (root / f"distilled-{seed}" / distill.DATA_FOLDER / distill.RESPONSES_FILE).read_text().splitlines()]
        taught = sum(r["messages"][-1]["content"] == p["answer"] for r, p in zip(data, pairs))
        started = time.perf_counter()
        direct = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(root / "faq.jsonl"), root / f"direct-{seed}",
                                   hyperparameters=student_hyperparameters, progress=False), settings).output_dir
        direct_seconds = time.perf_counter() - started
        for name, folder, seconds in (("distilled", distilled, distill_seconds), ("fine-tuned on references", direct,
                                                                                  direct_seconds)):
            said = answers(settings, folder, questions, args.max_tokens)
            agreed = sum(a == t for a, t in zip(said, teacher_answers))
            correct = sum(a == r for a, r in zip(said, references))
            print(f"seed {seed}, student {name}: agrees with the teacher on {agreed}/{len(questions)} held-out "
                  f"questions ({100 * agreed / len(questions):.0f} %), {correct}/{len(questions)} equal the reference; "
                  f"{seconds:.1f} s")
        print(f"seed {seed}: the teacher's answers to the {len(pairs)} prompts: {taught} equal the taught answers")


if __name__ == "__main__":
    main()

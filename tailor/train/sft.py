"""Supervised fine-tuning (FINE_TUNING): learn to answer as the assistant turns of the data do.

Records (messages, or prompt/completion turned into messages) are rendered with the model's chat
template; the loss is taken on every assistant turn and on nothing else, so the model learns the
answers without learning to imitate the questions. See ``tailor.data.render`` for how the
assistant tokens are found, and ``train/supervised.py`` for the run it shares with continued
pre-training.

Run it from the command line with ``tailor train --type FINE_TUNING`` or as
``python -m tailor.train.sft SPEC.json`` (what the job runner does).
"""

from __future__ import annotations

from tailor.data.formats import chat_messages, chat_tools
from tailor.data.render import chat_example
from tailor.settings import Settings, get_settings
from tailor.train.contract import Hooks, TrainOutcome
from tailor.train.process import main
from tailor.train.spec import TrainSpec
from tailor.train.supervised import run_recipe


def examples_for(records, tokenizer):
    return [chat_example(tokenizer, chat_messages(record), tools=chat_tools(record)) for record in records]


def run(spec: TrainSpec, settings: Settings | None = None,
        hooks: Hooks | None = None) -> TrainOutcome:
    return run_recipe(spec, settings or get_settings(), examples_for, hooks)


if __name__ == "__main__":
    raise SystemExit(main(run))

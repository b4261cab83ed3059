"""Supervised fine-tuning (FINE_TUNING): learn to answer as the assistant turns of the data do.

Records (messages, or prompt/completion turned into messages) are rendered with the model's chat
template; the loss is taken on every assistant turn and on nothing else, so the model learns the
answers without learning to imitate the questions. See ``tailor.data.render`` for how the
assistant tokens are found, and ``train.common`` for the loop, early stopping and outputs.

Run it from the command line with ``tailor train --type FINE_TUNING`` or as
``python -m tailor.train.sft SPEC.json`` (what the job runner does).
"""

from __future__ import annotations

from tailor.data.formats import chat_messages
from tailor.data.render import chat_example
from tailor.settings import Settings, get_settings
from tailor.train import common


def examples_for(records, tokenizer):
    return [chat_example(tokenizer, chat_messages(record)) for record in records]


def run(spec: common.TrainSpec, settings: Settings | None = None,
        hooks: common.Hooks | None = None) -> common.TrainOutcome:
    return common.run_recipe(spec, settings or get_settings(), examples_for, hooks)


if __name__ == "__main__":
    raise SystemExit(common.main(run))

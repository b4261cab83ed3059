"""``serve.generation.load_target``: how ``tailor generate --model NAME|ARN`` loads a custom model in
its own process, from the ``Target`` that ``services.inference.weights_for`` gives (which Target an
ARN means is the serving tests' business: tests/api/test_serving.py). A LoRA model's Target is its
base with the adapter on top, and it must answer exactly as its training output folder does."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_a_lora_target_puts_its_adapter_on_its_base(trained):
    from tailor.serve.generation import chat, load_for_inference, load_target
    from tailor.serve.protocol import Target
    from tailor.settings import Settings

    settings = Settings(home=trained.home)
    prompts = ["Code 3?", "Code 5?"]

    def answers(loaded) -> list[str]:
        return chat(loaded, prompts, max_new_tokens=24)

    by_target = answers(load_target(Target(base="tailor.tiny", adapter=str(trained.lora_a / "model")), settings))
    assert by_target == answers(load_for_inference(str(trained.lora_a), settings, progress=False))
    # The adapter is on: the other adapter, taught other codes, answers otherwise.
    assert by_target != answers(load_for_inference(str(trained.lora_b), settings, progress=False))

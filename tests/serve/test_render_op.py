"""The engine's ``render`` op: the training view from the engine process, loading the tokenizer
only (the API process never imports transformers; the engine loads no weights for this)."""

from __future__ import annotations

import asyncio

import pytest

from tailor.errors import ModelFailed
from tailor.serve.client import EngineClient
from tailor.settings import Settings


def test_render_gives_views_per_record_with_the_tokenizer_only(home):
    chat = {"messages": [{"role": "user", "content": "What is Tailor?"},
                         {"role": "assistant", "content": "A platform."}]}

    async def scenario():
        client = EngineClient(Settings(home=home))
        try:
            views = await client.render("tailor.tiny", "FINE_TUNING", [chat, {"messages": "oops"}])
            with pytest.raises(ModelFailed):
                await client.render("no.such-model", "FINE_TUNING", [chat])
            return views, await client.stats()
        finally:
            client.close()

    (view, failed), stats = asyncio.run(scenario())
    assert "".join(text for text, learned in view["segments"] if learned) == "A platform.<|end|>"
    assert "What is Tailor?" in "".join(text for text, learned in view["segments"] if not learned)
    assert view["tokens"] > view["targets"] > 0
    assert "messages" in failed["error"]
    assert stats["base_loads"] == 0 and stats["models"] == {}  # no weights were loaded

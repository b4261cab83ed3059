"""Tenant isolation: another tenant's latency while one tenant sends huge prompts.

    python bench/tenant_isolation.py [--seconds 20] [--attack-mb 10] [--long-characters 900000]

A real ``tailor serve`` runs in a child process with a home of its own (the built-in tiny model is
linked from the default model cache, and built there on first use) and access keys for two
principals. Bob asks ``tailor.tiny`` a short question through the ``openai`` client (at most 16
new tokens), one request after another, in three phases of ``--seconds`` each:

1. **idle**: nobody else is calling;
2. **10 MB prompts**: alice posts ``--attack-mb`` MB prompts to ``/v1/chat/completions`` back to
   back; each is refused (400);
3. **long allowed prompts**: alice posts prompts of ``--long-characters`` characters, under the
   default ``max_prompt_characters``. The engine tokenizes each, then refuses it: it is over the
   tiny model's 1024-token context window. This is the cost of tokenizing a long prompt that the
   character limit lets through.

Prints bob's latency per phase (p50, p95, max) and the ratio of each attack phase's p50 to the
idle p50, and how long alice's prompts took to be refused. Numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

SENTENCE = "Tailor fine-tunes open models on your own machines and serves them. "
QUESTION = [{"role": "user", "content": "What is Tailor?"}]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare_home(home: Path) -> dict[str, tuple[str, str]]:
    """A Tailor home whose model cache links to the default one (the tiny model built once);
    access keys for alice and bob."""
    from tailor.services.keys import create_key
    from tailor.settings import Settings, get_settings
    from tailor.store.db import open_store
    from tailor.tiny import tiny_model_dir

    cache = get_settings().models_dir
    tiny_model_dir(cache, progress=False)
    (home / "models").mkdir(parents=True)
    for entry in cache.iterdir():
        if not entry.name.startswith("."):
            os.symlink(entry, home / "models" / entry.name)
    settings = Settings(home=home)
    store = open_store(settings)
    return {name: create_key(store, settings, name) for name in ("alice", "bob")}


def start_server(home: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "tailor", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env={**os.environ, "TAILOR_HOME": str(home)},
                              stdout=open(home / "server.log", "ab"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("server did not start:\n" + (home / "server.log").read_text()[-3000:])


def prompt_body(characters: int) -> bytes:
    """A chat-completions body whose one user message is ``characters`` characters of prose."""
    text = (SENTENCE * (characters // len(SENTENCE) + 1))[:characters]
    return json.dumps({"model": "tailor.tiny", "max_tokens": 16,
                       "messages": [{"role": "user", "content": text}]}).encode()


def attacker(endpoint: str, key: str, body: bytes, stop: threading.Event, results: list) -> None:
    """Post ``body`` back to back until ``stop``; ``(status, seconds)`` of each into ``results``."""
    import httpx

    with httpx.Client(timeout=300) as client:
        while not stop.is_set():
            began = time.perf_counter()
            response = client.post(endpoint + "/v1/chat/completions", content=body,
                                   headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            results.append((response.status_code, time.perf_counter() - began))


def bob_phase(bob, seconds: float) -> list[float]:
    """Bob's short request, one after another, for ``seconds`` (at least two requests)."""
    latencies: list[float] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends or len(latencies) < 2:
        began = time.perf_counter()
        reply = bob.chat.completions.create(model="tailor.tiny", max_tokens=16, messages=QUESTION)
        latencies.append(time.perf_counter() - began)
        assert reply.choices[0].message.content is not None
    return latencies


def attack_phase(bob, endpoint: str, alice_key: str, body: bytes, seconds: float) -> tuple[list[float], list]:
    stop, refused = threading.Event(), []
    thread = threading.Thread(target=attacker, args=(endpoint, alice_key, body, stop, refused), daemon=True)
    thread.start()
    time.sleep(0.5)  # the first huge body is on its way before bob starts timing
    try:
        latencies = bob_phase(bob, seconds)
    finally:
        stop.set()
        thread.join(timeout=600)
    return latencies, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--attack-mb", type=float, default=10.0)
    parser.add_argument("--long-characters", type=int, default=900_000)
    args = parser.parse_args()

    from openai import OpenAI

    home = Path(tempfile.mkdtemp(prefix="tailor-bench-isolation-"))
    keys = prepare_home(home)
    port = 19000 + os.getpid() % 1000
    endpoint = f"http://127.0.0.1:{port}"
    alice_key, bob_key = (".".join(keys[name]) for name in ("alice", "bob"))
    server = start_server(home, port)
    try:
        bob = OpenAI(base_url=endpoint + "/v1", api_key=bob_key, max_retries=0, timeout=300)
        for _ in range(3):  # starts the engine, loads the model, warms the path
            bob.chat.completions.create(model="tailor.tiny", max_tokens=16, messages=QUESTION)
        huge = prompt_body(int(args.attack_mb * 1024 * 1024))
        phases = {"idle": (bob_phase(bob, args.seconds), [])}
        phases[f"{args.attack_mb:g} MB prompts"] = attack_phase(bob, endpoint, alice_key, huge, args.seconds)
        phases[f"{args.long_characters:,}-character prompts"] = attack_phase(
            bob, endpoint, alice_key, prompt_body(args.long_characters), args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\nTenant isolation: bob's short requests (tailor.tiny, max 16 tokens, OpenAI API) while alice sends "
          f"huge prompts; {args.seconds:g} s per phase, {os.cpu_count()} CPUs\n")
    idle = statistics.median(phases["idle"][0])
    print(f"{'phase':30}{'bob n':>6}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'p50 / idle':>12}"
          f"{'alice n':>9}{'refused in (p50) s':>20}  alice statuses")
    for name, (latencies, refused) in phases.items():
        p50 = statistics.median(latencies)
        alice = (f"{len(refused):9}{statistics.median(s for _, s in refused):20.2f}  "
                 f"{sorted({status for status, _ in refused})}") if refused else ""
        print(f"{name:30}{len(latencies):6}{p50:8.3f}{percentile(latencies, 0.95):8.3f}{max(latencies):8.3f}"
              f"{p50 / idle:11.1f}x{alice}")
    print(f"\nserver log: {home / 'server.log'}; engine log: {home / 'logs' / 'engine.log'}")


if __name__ == "__main__":
    main()

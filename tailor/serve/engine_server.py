"""The engine's own process: ``python -m tailor.serve.engine_server --socket PATH``.

The API server starts it (``tailor.serve.client``) and talks to it over a Unix socket, one
connection per request, one JSON object per line each way:

    -> {"op": "generate", "target": {...}, "request": {...}, "timeout_s": 120}
    <- {"event": "delta", "text": "..."}   (zero or more)
    <- {"event": "done", "completion": {...}}  or  {"event": "error", "code": "...", "message": "..."}

    -> {"op": "count_tokens", "target": {...}, "request": {...}}   <- {"event": "count", "input_tokens": N}
    -> {"op": "load", "target": {...}}                            <- {"event": "loaded"} | error
    -> {"op": "stats"}                                             <- {"event": "stats", ...}
    -> {"op": "render", "model": KEY, "kind": "FINE_TUNING", "records": [{...}, ...]}
                              <- {"event": "rendered", "records": [{"segments", "tokens", "targets"} | {"error"}]}
       (the training view, tailor.data.preview: only the model's tokenizer is loaded, not its weights)

A client that disconnects cancels its request. The process exits when its parent (the API
server) is gone, so a killed server never leaves an engine holding a model in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from tailor.errors import InvalidInput
from tailor.serve.engine import Engine
from tailor.serve.protocol import (
    Completion,
    Target,
    TextDelta,
    chat_request_from_json,
    to_json,
)
from tailor.settings import Settings

log = logging.getLogger("tailor.engine")


def _line(payload: dict) -> bytes:
    return json.dumps(payload).encode() + b"\n"


def _error(code: str, message: str) -> bytes:
    return _line({"event": "error", "code": code, "message": message})


async def _generate(engine: Engine, message: dict, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    handle = engine.submit(Target(**message["target"]), chat_request_from_json(message["request"]),
                           lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
                           timeout_s=message.get("timeout_s"))
    disconnected = asyncio.ensure_future(reader.read())  # EOF: the client went away
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            await asyncio.wait({getter, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                handle.cancel()
                return
            event = getter.result()
            if isinstance(event, TextDelta):
                writer.write(_line({"event": "delta", "text": event.text}))
            elif isinstance(event, Completion):
                writer.write(_line({"event": "done", "completion": to_json(event)}))
            else:
                writer.write(_error(event.code, event.message))
            await writer.drain()
            if not isinstance(event, TextDelta):
                return
    finally:
        disconnected.cancel()


async def _handle(engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        if not line:  # a readiness probe: connected, then closed
            writer.close()
            return
        message = json.loads(line)
        op = message.get("op")
        if op == "generate":
            await _generate(engine, message, writer, reader)
        elif op == "count_tokens":
            count = await asyncio.to_thread(engine.count_tokens, Target(**message["target"]),
                                            chat_request_from_json(message["request"]))
            writer.write(_line({"event": "count", "input_tokens": count}))
        elif op == "load":
            await asyncio.to_thread(engine.load, Target(**message["target"]))
            writer.write(_line({"event": "loaded"}))
        elif op == "render":
            records = await asyncio.to_thread(engine.render, str(message["model"]), str(message["kind"]),
                                              list(message["records"]))
            writer.write(_line({"event": "rendered", "records": records}))
        elif op == "stats":
            writer.write(_line({"event": "stats", **engine.stats, "models": engine.loaded()}))
        else:
            writer.write(_error("ValidationException", f"unknown op {op!r}"))
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    except InvalidInput as error:  # the caller's fault (a prompt over max_prompt_characters): a 400
        writer.write(_error("ValidationException", error.message))
    except Exception as error:  # loading failed, bad weights, ...: the caller gets the reason
        log.exception("request failed")
        reason = getattr(error, "message", None) or str(error) or type(error).__name__
        writer.write(_error("ModelErrorException", reason))
    try:
        await writer.drain()
        writer.close()
    except ConnectionError:
        pass


async def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.info("parent process %d is gone; exiting", parent)
    os._exit(0)


async def serve(socket_path: Path, settings: Settings) -> None:
    engine = Engine(settings)
    socket_path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(lambda r, w: _handle(engine, r, w), path=str(socket_path),
                                             limit=64 * 1024 * 1024)
    os.chmod(socket_path, 0o600)  # only this user may ask the engine anything
    watcher = asyncio.ensure_future(_watch_parent(os.getppid()))
    log.info("engine ready on %s; engine pid %d", socket_path, os.getpid())
    try:
        async with server:
            await server.serve_forever()
    finally:
        watcher.cancel()
        engine.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    asyncio.run(serve(args.socket, Settings()))


if __name__ == "__main__":
    main()

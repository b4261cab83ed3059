"""The one network path out of the grader sandbox: a judge grader's calls to its judge.

A grader has no network (``tailor.graders.sandbox``), but the judge templates must reach the judge
model the operator registered for them (``TAILOR_JUDGE_URL``). Two pieces make that one path and
no other:

- ``judge_egress(url)``, in the training process: an HTTP proxy on a Unix socket that forwards
  ``CONNECT host:port`` (HTTPS) and ``METHOD http://host:port/...`` (HTTP) to that URL's host and
  port only, and answers 403 to any other destination;
- ``relay_to_judge(path)``, inside the sandbox: a loopback port that ``HTTP_PROXY``/``HTTPS_PROXY``
  point at, whose connections are spliced onto that socket (bound into the sandbox).

Hand-written rather than a proxy library: the whole job is "one destination, or 403", a few dozen
lines over the standard library, and the sandbox's child must import nothing it does not ship.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

PROXY_IDLE_SECONDS = 300.0


@contextlib.contextmanager
def judge_egress(url: str | None) -> Iterator[str | None]:
    """An HTTP proxy on a Unix socket that reaches the host and port of ``url`` and nothing else;
    yields the socket's path (None, and no proxy, without a usable URL).

    The judge templates must reach their judge, and a grader has no network; this is the narrow
    exception, decided by the operator who registered ``TAILOR_JUDGE_URL`` for this grader."""
    import shutil
    import socket
    import tempfile

    parts = urllib.parse.urlsplit(url or "")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.scheme not in ("http", "https"):
        yield None
        return
    allowed = (parts.hostname.lower(), port)
    folder = tempfile.mkdtemp(prefix="tailor-judge-")  # 0700: only this account (and bwrap) reach it
    path = os.path.join(folder, "judge.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connections: set[socket.socket] = set()
    try:
        listener.bind(path)
        os.chmod(path, 0o666)  # the grader runs as nobody; the folder keeps everyone else out
        listener.listen(16)
        threading.Thread(target=_accept_judge_connections, args=(listener, allowed, connections),
                         daemon=True, name="tailor-judge-proxy").start()
        yield path
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        listener.close()
        for connection in list(connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(folder, ignore_errors=True)


def _accept_judge_connections(listener: socket.socket, allowed: tuple[str, int],
                              connections: set[socket.socket]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # closed at the end of the batch
            return
        connections.add(client)
        threading.Thread(target=_proxy_to_judge, args=(client, allowed, connections), daemon=True).start()


def _proxy_to_judge(client: socket.socket, allowed: tuple[str, int], connections: set[socket.socket]) -> None:
    """One proxied request: ``CONNECT host:port`` (HTTPS) or ``METHOD http://host:port/path`` (HTTP)."""
    import socket

    try:
        client.settimeout(PROXY_IDLE_SECONDS)
        try:
            head, rest = _read_head(client)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host, port = host.strip("[]").lower(), int(port_text)
            else:
                parts = urllib.parse.urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    raise ValueError(target)
                host, port = parts.hostname.lower(), parts.port or 80
        except (OSError, ValueError):
            return _refuse(client, 400, "the grader sandbox's proxy takes only HTTP proxy requests for the judge")
        if (host, port) != allowed:
            return _refuse(client, 403, f"the grader sandbox lets this grader reach only its judge "
                                        f"({allowed[0]}:{allowed[1]}), not {host}:{port}")
        try:
            upstream = socket.create_connection(allowed, timeout=PROXY_IDLE_SECONDS)
        except OSError as error:
            return _refuse(client, 502, f"the judge at {host}:{port} cannot be reached: {error}")
        connections.add(upstream)
        try:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # to the judge in origin form, one request per connection
                origin = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
                kept = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower()
                        not in ("connection", "proxy-connection", "proxy-authorization", "keep-alive")]
                upstream.sendall("\r\n".join([f"{method} {origin} {version}", *kept, "Connection: close",
                                               "", ""]).encode("latin-1"))
            if rest:
                upstream.sendall(rest)
            splice(client, upstream, PROXY_IDLE_SECONDS)
        except OSError:
            pass
        finally:
            connections.discard(upstream)
            upstream.close()
    finally:
        connections.discard(client)
        client.close()


def _read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or len(data) > 65536:
            raise ValueError("no request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _refuse(client: socket.socket, status: int, reason: str) -> None:
    body = reason.encode()
    with contextlib.suppress(OSError):
        client.sendall(b"HTTP/1.1 %d Refused\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                       b"Connection: close\r\n\r\n%s" % (status, len(body), body))


def splice(first: socket.socket, second: socket.socket, idle_seconds: float | None) -> None:
    """Copy bytes both ways until both sides have finished (or nothing moved for ``idle_seconds``)."""
    import socket

    peers = {first: second, second: first}
    with selectors.DefaultSelector() as selector:
        for connection in peers:
            selector.register(connection, selectors.EVENT_READ)
        open_sides = 2
        while open_sides:
            events = selector.select(idle_seconds)
            if not events:
                return
            for key, _ in events:
                connection = key.fileobj
                data = connection.recv(65536)
                if data:
                    peers[connection].sendall(data)
                    continue
                selector.unregister(connection)
                open_sides -= 1
                with contextlib.suppress(OSError):
                    peers[connection].shutdown(socket.SHUT_WR)


def relay_to_judge(socket_path: str) -> None:
    """Point HTTP(S)_PROXY at a loopback port whose connections go to the parent's judge proxy."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = proxy
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)

    def relay(client: socket.socket) -> None:
        with contextlib.closing(client), socket.socket(socket.AF_UNIX) as judge, contextlib.suppress(OSError):
            judge.connect(socket_path)
            splice(client, judge, None)

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True, name="tailor-judge-relay").start()

"""Notebook servers in tests: a kernel's channels WebSocket spoken by hand (Jupyter's
messaging protocol 5.3), for the tests and the benchmark that run code through Naiad's
proxy, and the clean-up every suite that starts them needs (their JupyterLabs outlive
the server that started them)."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any


def execute_request(session: str, code: str) -> tuple[str, str]:
    """(msg_id, the JSON text) of an ``execute_request`` for ``code`` on the shell channel."""
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "username": "naiad",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    return msg_id, json.dumps(message)


def replies(ws: Any, msg_id: str, timeout: float = 120.0) -> Iterator[dict[str, Any]]:
    """The messages answering ``msg_id``, until both its ``execute_reply`` and the ``idle``
    status (after which no more of its output comes) have arrived."""
    replied = idle = False
    deadline = time.monotonic() + timeout
    while not (replied and idle):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no execute_reply and idle status for {msg_id} in {timeout}s")
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        replied = replied or kind == "execute_reply"
        idle = idle or (kind == "status" and message["content"]["execution_state"] == "idle")
        yield message


def execute(ws: Any, session: str, code: str, timeout: float = 120.0) -> str:
    """Run ``code`` over an open channels WebSocket; what it printed (and any traceback)."""
    msg_id, text = execute_request(session, code)
    ws.send(text)
    out = []
    for message in replies(ws, msg_id, timeout):
        if message["msg_type"] == "stream":
            out.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            out.append("\n".join(message["content"]["traceback"]))
    return "".join(out)


def delete_all_notebooks(client: Any, timeout: float = 60.0) -> None:
    """Delete every notebook server the client's server keeps, all at once, and wait until
    they are gone (their processes ended, their files removed)."""
    from naiad.core.errors import NotFound

    names = [notebook.name for notebook in client.notebooks.list()]
    for name in names:
        client.notebooks.delete(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            try:
                client.notebooks.get(name)
            except NotFound:
                break
            time.sleep(0.2)

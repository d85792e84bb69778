"""``python bench/fixed_answer.py MODEL_DIR --port P``: the replica's HTTP stack, no model call.

The same process as ``python -m naiad.serving.main`` (the same arguments, uvicorn config,
ASGI app, header scan, body read and request figures), except that an invocation is
answered with a constant once its body is in: the ceiling the HTTP layer allows per
request, which ``bench/serving.py`` sets the replica against. It lives here, not behind a
replica flag, so the request path serving users carries no benchmark branch.
"""

import sys

from naiad.serving.app import Receive, ReplicaApp, Scope, Send, error_body, respond
from naiad.serving.main import main

FIXED_ANSWER = b'{"predictions":[[0.0]]}'


class FixedAnswerApp(ReplicaApp):
    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        length = -1
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
        if length > self.max_body_bytes:
            exc = self._too_large()
            await respond(send, exc.status_code, error_body(exc.code, exc.message))
            return exc.status_code
        await self._body(receive)
        await respond(send, 200, FIXED_ANSWER)
        return 200


if __name__ == "__main__":
    sys.exit(main(app_type=FixedAnswerApp))

"""The inference path: a routing table the keeper publishes, and forwarding with one retry.

It stays specialised (POST only, whole bodies, its own HTTP/1.1 client in ``upstream``)
because it is on every invocation's path; anything else goes through ``forward``.

The keeper replaces the whole table at once (one reference assignment), so a request sees
the old routes or the new ones, never a mix. A request picks a variant by weight among
those with a healthy replica, then the next replica of that variant in turn. A replica
that refuses the connection or drops it without answering (it is dying) is left out for a
moment and the request goes to another one, so a killed replica fails no request while
another is up. Inference is stateless, so re-sending is safe.
"""

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from naiad.server.errors import error_body
from naiad.server.proxy.lanes import Lanes
from naiad.server.proxy.upstream import Target, Unreachable, Upstream, UpstreamTimeout

ATTEMPTS = 3  # the first try and up to two retries, each on another replica
DOWN_S = 2.0  # how long a replica that failed a connection is left out
RETRY_AFTER_S = 1
_PASSED_BACK = ("content-type", "retry-after", "x-amzn-sagemaker-custom-attributes")


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    targets: tuple[Target, ...]  # healthy replicas, e.g. ("127.0.0.1", 41234)
    max_delay_s: float = 0.0  # the endpoint's batching delay: what a request may wait to share


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


def _error(status: int, code: str, message: str, retry_after: bool = False) -> Answer:
    headers = {"content-type": "application/json"}
    if retry_after:
        headers["retry-after"] = str(RETRY_AFTER_S)
    return Answer(status, error_body(code, message), headers)


def unavailable(message: str) -> Answer:
    return _error(503, "unavailable", message, retry_after=True)


class Book(Protocol):
    """Where the router counts what it did (the keeper's ``MetricsBook``)."""

    def record_retry(self, endpoint: str) -> None: ...

    def record_proxy(self, endpoint: str, variant: str, seconds: float) -> None: ...

    def record_unavailable(self, endpoint: str) -> None: ...


class Router:
    def __init__(self, book: Book, timeout_s: float = 60.0) -> None:
        self.book = book
        self.timeout_s = timeout_s
        self._table: dict[str, tuple[VariantRoute, ...]] = {}
        self._turn: dict[tuple[str, str], int] = {}
        self._down: dict[Target, float] = {}
        self.upstream: Upstream | None = None
        self.lanes: Lanes | None = None
        # Set by the keeper: awaited when an endpoint in the table has no replica at all (it
        # scaled to zero); returns once one serves, or once it stops waiting.
        self.on_idle: Callable[[str], Awaitable[None]] | None = None

    def open(self) -> None:
        """The keep-alive connections every forwarded request shares (on the server's loop)."""
        self.upstream = Upstream(timeout_s=self.timeout_s)
        self.lanes = Lanes(self.upstream)

    async def aclose(self) -> None:
        if self.upstream is not None:
            await self.upstream.aclose()
            self.upstream = self.lanes = None

    def publish(self, table: dict[str, tuple[VariantRoute, ...]]) -> None:
        self._table = table

    def routes(self, endpoint: str) -> tuple[VariantRoute, ...] | None:
        return self._table.get(endpoint)

    def _leave_out(self, target: Target) -> None:
        """Skip ``target`` for a moment (the keeper's next check decides what it is)."""
        now = time.monotonic()
        if len(self._down) > 256:
            self._down = {t: until for t, until in self._down.items() if until > now}
        self._down[target] = now + DOWN_S

    def _pick(
        self,
        endpoint: str,
        routes: tuple[VariantRoute, ...],
        tried: set[Target],
        weighed: bool = True,
    ) -> tuple[VariantRoute, Target] | None:
        """A variant by weight (any of ``routes`` when not ``weighed``) and its next replica."""
        now = time.monotonic()
        usable = []
        for variant in routes:
            targets = [
                t for t in variant.targets if t not in tried and self._down.get(t, 0.0) <= now
            ]
            if targets and (variant.weight > 0 or not weighed):
                usable.append((variant, targets))
        if not usable:
            return None
        chosen, targets = usable[-1]
        point = random.random() * sum(v.weight for v, _ in usable)
        for variant, candidates in usable:
            point -= variant.weight
            if point < 0:
                chosen, targets = variant, candidates
                break
        key = (endpoint, chosen.name)
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        return chosen, targets[turn % len(targets)]

    async def forward(
        self, endpoint: str, body: bytes, headers: dict[str, str], only: str | None = None
    ) -> Answer | None:
        """The replica's answer, a 503/504 sentence, or None when the table has no such
        endpoint (the caller tells a missing endpoint from one that is not serving yet).
        ``only`` sends the request to that variant alone (SageMaker's TargetVariant)."""
        routes = self._table.get(endpoint)
        if routes is None:
            return None
        if only is not None:
            routes = tuple(v for v in routes if v.name == only)
            if not routes:
                return _error(
                    400, "invalid_input", f"Endpoint {endpoint!r} has no variant {only!r} serving."
                )
        lanes = self.lanes
        assert lanes is not None, "Router.open() runs in the server's lifespan"
        tried: set[Target] = set()
        if self.on_idle is not None and not any(v.targets for v in routes):
            await self.on_idle(endpoint)
        for attempt in range(ATTEMPTS):
            table = self._table.get(endpoint) or routes
            if only is not None:
                table = tuple(v for v in table if v.name == only) or routes
            picked = self._pick(endpoint, table, tried, weighed=only is None)
            if picked is None:
                break
            variant, target = picked
            tried.add(target)
            if attempt:
                self.book.record_retry(endpoint)
            started = time.perf_counter()
            try:
                reply = await lanes.post(target, body, headers, variant.max_delay_s)
            except Unreachable:
                self._leave_out(target)
                continue
            except UpstreamTimeout:
                return _error(
                    504,
                    "timeout",
                    f"Endpoint {endpoint!r} did not answer within {self.timeout_s:g}s; send "
                    "fewer rows per request, or give it more replicas.",
                )
            self.book.record_proxy(endpoint, variant.name, time.perf_counter() - started)
            passed = {k: reply.headers[k] for k in _PASSED_BACK if k in reply.headers}
            passed["x-naiad-variant"] = variant.name
            return Answer(reply.status, reply.body, passed)
        self.book.record_unavailable(endpoint)
        return unavailable(
            f"Endpoint {endpoint!r} has no healthy replica right now (they are starting or "
            "restarting); retry shortly."
        )

"""Failed sign-ins, counted per user name and per client address, to slow a guesser down.

After ``PER_USER`` failures for one name, or ``PER_ADDRESS`` from one address, within
``WINDOW_S``, further sign-ins for that name (or from that address) are refused until the
oldest failure leaves the window, without checking the password, which also keeps
argon2's 64 MiB per check from being spent on a flood. A success clears the name's
count. The counts live in the server's memory: each server of a deployment keeps its own,
and a restart forgets them.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from naiad.core.errors import TooManyRequests

PER_USER, PER_ADDRESS, WINDOW_S = 5, 20, 300.0
T = TypeVar("T")


class SignInThrottle:
    def __init__(
        self, per_user: int = PER_USER, per_address: int = PER_ADDRESS, window_s: float = WINDOW_S
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user: str, address: str) -> None:
        """Raise TooManyRequests, saying how long to wait, when either count is full."""
        now = time.monotonic()
        with self._lock:
            for kind, key in (("user", user), ("address", address)):
                failures = self._recent((kind, key), now)
                if len(failures) >= self.limits[kind]:
                    wait = int(failures[0] + self.window_s - now) + 1
                    who = f"user {user!r}" if kind == "user" else f"address {address}"
                    raise TooManyRequests(
                        f"Too many failed sign-ins for {who}: try again in {wait} s "
                        "(an admin can reset a forgotten password with `naiad users update "
                        "NAME --password`)."
                    )

    def attempt(self, user: str, address: str, sign_in: Callable[[], T | None]) -> T | None:
        """``sign_in()`` unless the name or address is held (TooManyRequests), counting a
        None it returns as a failure and anything else as a success."""
        self.check(user, address)
        signed = sign_in()
        if signed is None:
            self.failed(user, address)
        else:
            self.succeeded(user)
        return signed

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("user", user), ("address", address)):
                failures = self._recent(key, now)
                failures.append(now)
                self._failures[key] = failures

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        """The key's failures still in the window; the map keeps only keys that have some."""
        failures = self._failures.pop(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if failures:
            self._failures[key] = failures
        return failures

"""Failed sign-ins are counted per name and per address, within a window that slides."""

import time

import pytest

from naiad.core.errors import TooManyRequests
from naiad.server.throttle import SignInThrottle


def test_a_name_is_held_after_its_failures_until_the_window_passes() -> None:
    throttle = SignInThrottle(per_user=2, per_address=10, window_s=0.4)
    for _ in range(2):
        throttle.check("ana", "10.0.0.1")
        throttle.failed("ana", "10.0.0.1")
    with pytest.raises(TooManyRequests, match=r"user 'ana': try again in 1 s"):
        throttle.check("ana", "10.0.0.2")  # from anywhere: it is the name being guessed
    throttle.check("bob", "10.0.0.1")  # another name is not held
    time.sleep(0.45)
    throttle.check("ana", "10.0.0.1")


def test_an_address_is_held_after_failures_across_names_and_success_clears_a_name() -> None:
    throttle = SignInThrottle(per_user=3, per_address=3, window_s=60)
    for name in ("ana", "bob", "cy"):
        throttle.failed(name, "10.0.0.9")
    with pytest.raises(TooManyRequests, match=r"address 10\.0\.0\.9"):
        throttle.check("dee", "10.0.0.9")
    throttle.check("dee", "10.0.0.10")
    throttle.failed("eve", "10.0.0.10")
    throttle.failed("eve", "10.0.0.10")
    throttle.succeeded("eve")
    throttle.failed("eve", "10.0.0.11")
    throttle.check("eve", "10.0.0.11")  # one failure since the success, of 3 allowed

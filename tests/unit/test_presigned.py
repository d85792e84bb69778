"""Presigned notebook links: signed for one notebook, one session length and one token;
refused once expired or altered."""

import pytest

from naiad.server.presigned import LINK_S, LinkProblem, sign, verify


def test_a_link_verifies_for_its_notebook_until_it_expires() -> None:
    auth = sign("token", "explore", 1800, now=1_000_000)
    assert verify("token", "explore", auth, now=1_000_000 + LINK_S) == 1800
    with pytest.raises(LinkProblem, match="expired 1 s ago"):
        verify("token", "explore", auth, now=1_000_000 + LINK_S + 1)
    expires, _, mac = auth.split(".")
    for wrong_token, name, text in (
        ("other-token", "explore", auth),  # the server's token changed
        ("token", "other", auth),  # another notebook
        ("token", "explore", f"{expires}.43200.{mac}"),  # a longer session
        ("token", "explore", f"{int(expires) + 60}.1800.{mac}"),  # a later deadline
        ("token", "explore", "garbage"),
        ("token", "explore", ""),
    ):
        with pytest.raises(LinkProblem, match="not valid"):
            verify(wrong_token, name, text, now=1_000_000)

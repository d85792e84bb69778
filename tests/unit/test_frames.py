"""The frame layout between the proxy and a replica: what goes in comes out, and a broken
frame is a FrameError, never an IndexError or a wrong answer."""

import pytest

from naiad.core import frames


def test_requests_and_answers_survive_the_round_trip() -> None:
    requests = [
        (b"application/json", b"", b'{"inputs": [1]}'),
        (b"", b"application/x-npy", b""),
        (b"text/csv", b"*/*", b"\x00" * 70_000),
    ]
    assert frames.decode_requests(frames.encode_requests(requests)) == requests
    answers = [(200, b"application/json", b"{}"), (503, b"", b"x" * 70_000)]
    assert frames.decode_answers(frames.encode_answers(answers)) == answers
    assert frames.decode_requests(frames.encode_requests([])) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x00",
        b"\xff\xff\xff\xff",  # a count the bytes cannot hold
        frames.encode_requests([(b"a", b"b", b"body")])[:-1],  # truncated body
        frames.encode_requests([(b"a", b"b", b"body")]) + b"!",  # bytes past the last entry
    ],
)
def test_a_broken_frame_is_a_frame_error(data: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode_requests(data)
    with pytest.raises(frames.FrameError):
        frames.decode_answers(data)

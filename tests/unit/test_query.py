"""The run search language: what parses, and the sentence when it doesn't."""

import pytest

from naiad.core.errors import InvalidInput
from naiad.core.query import Clause, OrderBy, parse_filter, parse_order_by


def test_parse_mixed_filter() -> None:
    clauses = parse_filter("metrics.acc >= 0.9 and params.opt = 'adam' AND tags.team != \"x\"")
    assert clauses == [
        Clause("metrics", "acc", ">=", 0.9),
        Clause("params", "opt", "=", "adam"),
        Clause("tags", "team", "!=", "x"),
    ]


def test_keys_with_slashes_and_backticks() -> None:
    assert parse_filter("metrics.val/loss < 1")[0].key == "val/loss"
    assert parse_filter("params.`my key` = 3")[0] == Clause("params", "my key", "=", 3.0)


def test_attributes() -> None:
    assert parse_filter("status = 'Completed'") == [
        Clause("attributes", "status", "=", "Completed")
    ]


@pytest.mark.parametrize(
    "text",
    ["metrics.acc >> 1", "acc > 1", "metrics.acc > 'high'", "params.lr = adam", "attributes.x = 1"],
)
def test_bad_filters_say_what_to_write(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_filter(text)
    assert len(err.value.message) > 20


def test_order_by() -> None:
    assert parse_order_by(["metrics.acc DESC", "params.lr", "start_time asc"]) == [
        OrderBy("metrics", "acc", True),
        OrderBy("params", "lr", False),
        OrderBy("attributes", "start_time", False),
    ]

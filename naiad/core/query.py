"""Run search language, MLflow-style: ``metrics.acc > 0.9 and params.optimizer = 'adam'``.

Parsed here once (pure), turned into SQL by the store.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from naiad.core.errors import InvalidInput

Kind = Literal["metrics", "params", "tags", "attributes"]
OPS = ("=", "!=", "<", "<=", ">", ">=", "like")
ATTRIBUTES = ("name", "status", "start_time", "end_time")
TIMES = ("start_time", "end_time")

_CLAUSE = re.compile(
    r"""\s*(?P<field>`[^`]+`|"[^"]+"|[A-Za-z_][\w\-./:]*(?:\.`[^`]+`)?)\s*
        (?P<op><=|>=|!=|=|<|>|(?i:like))\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[-+]?[\w.+\-]+)\s*""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    kind: Kind
    key: str
    op: str
    value: str | float | datetime


@dataclass(frozen=True)
class OrderBy:
    kind: Kind
    key: str
    descending: bool


def _field(text: str) -> tuple[Kind, str]:
    text = text.strip().strip('"')
    head, _, rest = text.partition(".")
    rest = rest.strip("`")
    aliases = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"}
    head = aliases.get(head, head)
    if head in ("metrics", "params", "tags", "attributes") and rest:
        kind: Kind = head  # type: ignore[assignment]
        key = rest
    elif text in ATTRIBUTES:
        kind, key = "attributes", text
    else:
        raise InvalidInput(
            f"Unknown field {text!r}: write metrics.<key>, params.<key>, tags.<key> "
            f"or one of {', '.join(ATTRIBUTES)}."
        )
    if kind == "attributes" and key not in ATTRIBUTES:
        raise InvalidInput(f"Unknown attribute {key!r}: use one of {', '.join(ATTRIBUTES)}.")
    return kind, key


def _time(raw: str, key: str) -> datetime:
    """A quoted ISO 8601 time (UTC unless it says otherwise) or seconds since the epoch."""
    try:
        if raw[:1] in ("'", '"'):
            moment = datetime.fromisoformat(raw[1:-1])
        else:
            moment = datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(
            f"The field {key} compares with a time, not {raw}: write e.g. {key} > "
            "'2024-05-01T12:00:00' (UTC unless an offset is given) or seconds since the epoch."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _value(raw: str, kind: Kind) -> str | float:
    if raw[:1] in ("'", '"'):
        return raw[1:-1].replace("\\'", "'").replace('\\"', '"')
    try:
        number = float(raw)
    except ValueError:
        raise InvalidInput(
            f"Value {raw!r} is neither a number nor a quoted string; quote text like 'adam'."
        ) from None
    return number if kind in ("metrics", "params") else raw


def parse_filter(text: str | None) -> list[Clause]:
    """Parse ``a and b and c``; an empty filter matches every run."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.fullmatch(part)
        if not match:
            raise InvalidInput(
                f'Cannot read filter clause {part!r}: write e.g. "metrics.acc > 0.9" or '
                "\"params.optimizer = 'adam'\", joined with 'and'."
            )
        kind, key = _field(match["field"])
        op = match["op"].lower()
        time = kind == "attributes" and key in TIMES
        value = _time(match["value"], key) if time else _value(match["value"], kind)
        if kind == "metrics" and not isinstance(value, float):
            raise InvalidInput(f"The field metrics.{key} compares with a number, not {value!r}.")
        if op == "like" and (kind == "metrics" or not isinstance(value, str)):
            raise InvalidInput(
                f"Cannot use 'like' in {part.strip()!r}: it matches text with a quoted pattern, "
                "as in params.optimizer like 'ad%'; compare numbers and times with =, !=, <, "
                "<=, > or >=."
            )
        clauses.append(Clause(kind, key, op, value))
    return clauses


def parse_order_by(items: list[str] | None) -> list[OrderBy]:
    """Parse ``["metrics.acc DESC", "params.lr"]`` (ascending unless DESC)."""
    result = []
    for item in items or []:
        words = item.strip().rsplit(None, 1)
        descending = False
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            descending = words[1].upper() == "DESC"
            field = words[0]
        else:
            field = item.strip()
        kind, key = _field(field)
        result.append(OrderBy(kind, key, descending))
    return result

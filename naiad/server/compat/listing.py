"""SageMaker's list conventions in one place: ``NameContains``, ``StatusEquals``,
``CreationTimeAfter/Before``, ``LastModifiedTimeAfter/Before``, ``SortBy``/``SortOrder``,
and ``MaxResults`` pages joined by an opaque ``NextToken``."""

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from naiad.server.compat.awsjson import AwsError

T = TypeVar("T")


@dataclass(frozen=True)
class Fields(Generic[T]):
    """How to read what the filters and sorts compare off one item."""

    name: Callable[[T], str]
    created: Callable[[T], datetime]
    status: Callable[[T], str] | None = None
    modified: Callable[[T], datetime] | None = None
    # Further ``SortBy`` values of one operation, each with its key.
    sorts: Mapping[str, Callable[[T], Any]] = field(default_factory=dict)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"naiad:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith("naiad:"):
            return max(0, int(text[len("naiad:") :]))
    except ValueError:
        pass
    raise AwsError("ValidationException", "NextToken is not one this API answered.")


def page(
    items: Sequence[T],
    params: dict[str, Any],
    fields: Fields[T],
    default_sort: str = "CreationTime",
    default_order: str = "Descending",
    default_max: int = 10,
) -> tuple[list[T], str | None]:
    """The items this request's filters keep, sorted, one page of them, and the token of
    the next page (None on the last)."""
    kept = list(items)
    if "NameContains" in params:
        needle = params["NameContains"].lower()
        kept = [i for i in kept if needle in fields.name(i).lower()]
    if "StatusEquals" in params and fields.status is not None:
        status = fields.status
        kept = [i for i in kept if status(i) == params["StatusEquals"]]
    bounds = [("CreationTime", fields.created)]
    if fields.modified is not None:
        bounds.append(("LastModifiedTime", fields.modified))
    for prefix, read in bounds:
        if f"{prefix}After" in params:
            after = _aware(params[f"{prefix}After"])
            kept = [i for i in kept if _aware(read(i)) > after]
        if f"{prefix}Before" in params:
            before = _aware(params[f"{prefix}Before"])
            kept = [i for i in kept if _aware(read(i)) < before]
    sort_by = params.get("SortBy", default_sort)
    key: Callable[[T], Any] = {
        "Name": fields.name,
        "Status": fields.status or fields.name,
        "LastModifiedTime": lambda i: _aware((fields.modified or fields.created)(i)),
        **fields.sorts,
    }.get(sort_by, lambda i: _aware(fields.created(i)))
    kept.sort(key=key, reverse=params.get("SortOrder", default_order) == "Descending")
    start = _offset(params.get("NextToken"))
    size = int(params.get("MaxResults", default_max))
    end = start + size
    return kept[start:end], (_token(end) if end < len(kept) else None)

"""Shapes shared by every resource."""

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from naiad.core.names import text_problem


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# Timestamps travel as ISO 8601 strings in UTC.
Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(lambda v: v.isoformat(), return_type=str),
]

T = TypeVar("T")


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Text a request asks to store or to match: no NUL, no lone surrogates (see text_problem).
Text = Annotated[str, AfterValidator(_storable)]

# Param values: what people pass as hyperparameters (numbers, strings, booleans, null).
ParamValue = str | int | float | bool | None


class Wire(BaseModel):
    """Base of every wire model: unknown fields are an error so typos don't pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(BaseModel):
    """Every 4xx answers this: a sentence saying what to fix."""

    error: str = Field(description="A machine-readable code, e.g. not_found.")
    message: str = Field(description="What is wrong and what to do about it.")
    detail: Any = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int = 0
    limit: int

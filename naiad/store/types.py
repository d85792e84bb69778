"""Column types: a pydantic model stored as JSON, read back as the model.

Code reads and writes the model, never the dict under it (Prefect's ``Pydantic``
TypeDecorator). JSON columns don't see changes made inside a value, so a stored model
is frozen and a change is a new one (``model_copy(update=...)``) assigned to the row.
"""

from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON, Dialect
from sqlalchemy.types import TypeDecorator

M = TypeVar("M", bound=BaseModel)


class PydanticJSON(TypeDecorator[M], Generic[M]):
    """``model`` as JSON (plain JSON on SQLite and PostgreSQL alike, as the tables were
    created), validated into the model on the way out."""

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[M]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: M | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise TypeError(f"expected {self.model.__name__}, got {type(value).__name__}")
        return value.model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> M | None:
        return None if value is None else self.model.model_validate(value)

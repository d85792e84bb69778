"""PydanticJSON: a spec goes in as its model and comes out as its model."""

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.exc import StatementError

from naiad.schemas.endpoints import (
    BatchingSpec,
    CaptureSpec,
    EndpointSpec,
    ResolvedVariant,
    Rollout,
)
from naiad.store.types import PydanticJSON

VARIANT = ResolvedVariant(
    name="digits-v1",
    key="digits-v1.1",
    model="digits:1",
    version_id="v1",
    artifact_uri="file:///models/digits/1",
    weight=1.0,
    replicas=2,
)


@pytest.fixture
def table() -> tuple[Table, Engine]:
    metadata = MetaData()
    specs = Table(
        "specs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("spec", PydanticJSON(EndpointSpec)),
    )
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return specs, engine


def test_round_trip_and_replace(table: tuple[Table, Engine]) -> None:
    specs, engine = table
    pending = Rollout(variants=[VARIANT], batching=BatchingSpec(), capture=CaptureSpec())
    spec = EndpointSpec(
        variants=[], batching=BatchingSpec(), capture=CaptureSpec(), pending=pending
    )
    with engine.begin() as connection:
        connection.execute(insert(specs).values(id=1, spec=spec))
        assert connection.execute(select(specs.c.spec)).scalar_one() == spec
        switched = spec.model_copy(update={"variants": pending.variants, "pending": None})
        connection.execute(update(specs).values(spec=switched))
        back = connection.execute(select(specs.c.spec)).scalar_one()
    assert isinstance(back, EndpointSpec)
    assert back.variants == [VARIANT] and back.pending is None
    assert back.slots() == {("digits-v1.1", 0), ("digits-v1.1", 1)}


def test_a_dict_is_refused(table: tuple[Table, Engine]) -> None:
    """Code writes the model, never the dict under it."""
    specs, engine = table
    refused = pytest.raises(StatementError, match="expected EndpointSpec, got dict")
    with refused, engine.begin() as connection:
        connection.execute(insert(specs).values(id=1, spec={"variants": []}))


def test_specs_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        VARIANT.replicas = 3  # type: ignore[misc]

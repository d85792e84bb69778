"""Run wire models: create, update, params, tags, the run itself, search and comparison."""

from typing import Literal

from pydantic import BaseModel, Field

from naiad.schemas.common import ParamValue, Text, Timestamp, Wire

EndStatus = Literal["Running", "Completed", "Failed", "Stopped"]

MAX_OFFSET = 1_000_000_000  # paging further than any store holds; bounded so SQL never overflows


class RunCreate(Wire):
    experiment: Text = Field(
        default="Default",
        min_length=1,
        max_length=200,
        description="Experiment name; created if it does not exist.",
    )
    name: Text | None = Field(default=None, max_length=200)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    tags: dict[str, Text] = Field(default_factory=dict)


class RunUpdate(Wire):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    status: EndStatus | None = None
    status_reason: Text | None = Field(default=None, max_length=5000)


class ParamsLog(Wire):
    params: dict[str, ParamValue]


class TagsSet(Wire):
    tags: dict[str, Text]


class MetricSummary(BaseModel):
    """The latest point of a metric plus its extremes, kept for search and tables."""

    value: float | str
    step: int
    timestamp: float
    min: float | str
    max: float | str
    count: int


class Run(BaseModel):
    id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    status_reason: str | None = None
    start_time: Timestamp
    end_time: Timestamp | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    artifact_uri: str
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )
    project: str = Field(default="default", description="The project it belongs to.")


class RunSearch(Wire):
    experiment: Text | None = None
    filter: Text | None = Field(
        default=None, description="e.g. \"metrics.acc > 0.9 and params.optimizer = 'adam'\""
    )
    order_by: list[Text] = Field(default_factory=list, description='e.g. ["metrics.acc DESC"]')
    created_by: Text | None = Field(
        default=None, max_length=200, description="Only runs by this user."
    )
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    limit: int = Field(default=100, ge=1, le=1000)


class RunComparison(BaseModel):
    runs: list[Run]
    params: dict[str, list[ParamValue]]
    metrics: dict[str, list[float | str | None]]
    differing_params: list[str]

"""Training job wire models."""

from pydantic import BaseModel, Field

from naiad.schemas.common import ParamValue, Timestamp, Wire


class JobCreate(Wire):
    name: str = Field(min_length=1, max_length=63, description="Unique; letters, digits, '-'.")
    entrypoint: str = Field(min_length=1, max_length=500, description="Script inside the source.")
    source_uri: str = Field(description="What PUT /sources answered for the source snapshot.")
    experiment: str = Field(default="jobs", min_length=1, max_length=200)
    hyperparameters: dict[str, ParamValue] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict, description="channel -> file:// or s3://")
    nodes: int = Field(default=1, ge=1, le=1024)
    processes_per_node: int = Field(default=1, ge=1, le=1024)
    gpus: int = Field(default=0, ge=0, le=1024, description="GPUs per node.")
    max_runtime_s: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=0, ge=0, le=100)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")


class Transition(BaseModel):
    status: str
    reason: str | None = None
    at: Timestamp


class TrainingJob(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    entrypoint: str
    source_uri: str
    experiment: str
    run_id: str
    hyperparameters: dict[str, ParamValue]
    inputs: dict[str, str]
    output_uri: str
    nodes: int
    processes_per_node: int
    gpus: int
    max_runtime_s: int | None
    max_retries: int
    priority: int
    attempt: int
    created_at: Timestamp
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    transitions: list[Transition] = Field(default_factory=list)


class SourceUploaded(BaseModel):
    source_uri: str
    size: int


class JobLogs(BaseModel):
    text: str
    offset: int = Field(description="Pass back as ?offset= to get only what came after.")
    complete: bool = Field(description="True when the job has ended and nothing more will come.")

"""Training job wire models, and ``JobSpec``, what a job row stores of the request."""

import math
import re
from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from naiad.core.errors import InvalidInput
from naiad.core.names import check_key
from naiad.schemas.common import ParamValue, Timestamp, Wire

MAX_RUNTIME_S = 2**31 - 1  # a 32-bit count of seconds: about 68 years
INT64 = 2**63
# A job's environment variables, within SageMaker's limits for CreateTrainingJob.
MAX_ENV_ENTRIES = 100
MAX_ENV_KEY = 512
MAX_ENV_VALUE = 512
RESERVED_ENV_PREFIXES = ("SM_", "NAIAD_")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def node_range(text: str | int) -> tuple[int, int | None]:
    """``"2"`` -> (2, None); ``"1:4"`` -> (1, 4): torchrun's ``--nnodes``, for an elastic job."""
    if isinstance(text, int):
        return text, None
    low, sep, high = str(text).strip().partition(":")
    try:
        nodes = int(low)
        most = int(high) if sep else None
    except ValueError:
        raise InvalidInput(
            f"Nodes {text!r} is neither a count (2) nor a range MIN:MAX (1:4) of whole numbers."
        ) from None
    if nodes < 1 or (most is not None and most < nodes):
        raise InvalidInput(f"Nodes {text!r}: give at least 1, and MIN:MAX with MAX >= MIN.")
    return nodes, most


class MetricDefinition(Wire):
    """A metric read from the job's log, as SageMaker's ``MetricDefinitions``: each line
    the regex matches (``re.search``) gives one point, the float its one group captured."""

    name: str = Field(
        validation_alias=AliasChoices("name", "Name"), description="The metric key on the run."
    )
    regex: str = Field(
        validation_alias=AliasChoices("regex", "Regex"),
        max_length=500,
        description="A Python regular expression with exactly one capturing group.",
    )

    @field_validator("name")
    @classmethod
    def _key(cls, name: str) -> str:
        try:
            return check_key(name, "Metric name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("regex")
    @classmethod
    def _one_group(cls, regex: str) -> str:
        shown = repr(regex if len(regex) <= 80 else regex[:77] + "...")
        try:
            groups = re.compile(regex).groups
        except (re.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"the regex {shown} does not compile ({exc})") from None
        if groups != 1:
            raise ValueError(
                f"the regex {shown} has {groups} capturing groups; it needs exactly one, "
                "around the number, e.g. 'loss: ([0-9.eE+-]+)' (use (?:...) for other groups)"
            )
        return regex


Filter = tuple[str, str, ParamValue | list[ParamValue]]


class ChannelOptions(Wire):
    """How an input channel reaches the job, as SageMaker's ``Channel`` says it: what
    ``inputdataconfig.json`` and ``SM_INPUT_DATA_CONFIG`` carry for the script."""

    distribution: Literal["FullyReplicated", "ShardedByS3Key"] = Field(
        default="FullyReplicated",
        description="FullyReplicated: every host gets every file; ShardedByS3Key: each host "
        "gets its share of the files (sorted by key, dealt out in turn).",
    )
    input_mode: Literal["File", "FastFile"] = Field(
        default="File",
        description="File: staged before the script starts; FastFile: linked, read on demand "
        "(local data and the server's local store; s3:// is downloaded as for File).",
    )
    content_type: str | None = Field(default=None, max_length=256, description="MIME type.")
    compression: Literal["None", "Gzip"] = "None"
    record_wrapper: Literal["None", "RecordIO"] = "None"
    manifest: str | None = Field(
        default=None,
        max_length=2048,
        description="SageMaker's ManifestFile: the manifest (a store path or s3:// URI), a "
        'JSON list of {"prefix": URI} then keys under it; only those keys are staged, and '
        "the channel's URI is that prefix.",
    )
    # A table channel (a Parquet/CSV dataset, sql://CONNECTION, dynamodb://TABLE) is read
    # as rows: materialised to Parquet files in File mode, streamed in FastFile mode.
    format: Literal["parquet", "csv"] | None = Field(
        default=None,
        description="Read the URI's files as a Parquet or CSV dataset (Hive partitions), "
        "with columns and filter pushed down; the script gets Parquet files.",
    )
    columns: list[str] | None = Field(
        default=None, min_length=1, max_length=10_000, description="Only these columns."
    )
    filter: list[Filter] | list[list[Filter]] | None = Field(
        default=None,
        max_length=100,
        description="Rows to keep, in pyarrow's form: [[column, op, value], ...] all hold, "
        "or a list of those of which one holds; op is =, !=, <, <=, >, >=, in, not in.",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="For sql://CONNECTION: the SELECT whose rows the channel holds.",
    )
    connection: str | None = Field(
        default=None,
        max_length=63,
        description="For dynamodb://TABLE: the named connection with its endpoint and keys "
        "(default: the AWS SDK's own configuration).",
    )


def table_problem(uri: str, options: ChannelOptions) -> str | None:
    """What is wrong with a channel's table options for its URI, or None."""
    sql, dynamo = uri.startswith("sql://"), uri.startswith("dynamodb://")
    if sql and not uri[len("sql://") :].strip("/"):
        return "sql:// names a connection: sql://NAME (see `naiad connections ls`)"
    if sql and not options.query:
        return f"{uri} needs a query in its channel options (the SELECT to read)"
    if options.query and not sql:
        return "a query is for a sql://CONNECTION input"
    if sql and (options.columns or options.filter):
        return "columns and filter are for datasets and DynamoDB; say them in the query"
    if options.format and (sql or dynamo):
        return f"format is for files (Parquet or CSV), not {uri.split('://')[0]}://"
    if options.connection and not dynamo:
        return "connection is for dynamodb://TABLE (a sql:// input names its own)"
    if (options.columns or options.filter) and not (options.format or dynamo):
        return "columns and filter read a table: set format (parquet or csv) too"
    table = sql or dynamo or options.format
    if table and (options.manifest or options.record_wrapper != "None"):
        return "a table channel has no manifest or record wrapper"
    if table and options.compression != "None":
        return "a table channel's compression is its files' own (Parquet's codecs)"
    return None


def _check_environment(environment: dict[str, str]) -> dict[str, str]:
    if len(environment) > MAX_ENV_ENTRIES:
        raise ValueError(
            f"the job has {len(environment)} environment variables; at most "
            f"{MAX_ENV_ENTRIES} are allowed"
        )
    for key, value in environment.items():
        shown = repr(key if len(key) <= 80 else key[:77] + "...")
        if len(key) > MAX_ENV_KEY or not _ENV_KEY.fullmatch(key):
            raise ValueError(
                f"environment variable {shown} is not a valid name: use up to {MAX_ENV_KEY} "
                "letters, digits or '_', not starting with a digit"
            )
        if key.startswith(RESERVED_ENV_PREFIXES):
            raise ValueError(
                f"environment variable {shown} starts with {key[: key.index('_') + 1]}, which "
                "Naiad reserves for the variables it sets itself (SM_* as SageMaker, NAIAD_*); "
                "rename it"
            )
        if len(value) > MAX_ENV_VALUE or "\x00" in value:
            raise ValueError(
                f"environment variable {shown} has a value of {len(value)} characters; values "
                f"hold at most {MAX_ENV_VALUE} characters and no NUL"
            )
    return environment


def _wire_value(value: ParamValue) -> ParamValue:
    """NaN, infinities and integers past 64 bits as the strings they print as: JSON has no
    NaN, and hyperparameters.json holds strings anyway, where float() reads them back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
        return str(value)
    return value


MAX_COMMAND_ARGS = 100
MAX_COMMAND_CHARS = 128 * 1024


def _check_command(command: list[str]) -> list[str]:
    if not command[0]:
        raise ValueError("the command's first word (the program to run) is empty")
    if any("\x00" in arg for arg in command):
        raise ValueError("the command holds a NUL character, which no argument can")
    total = sum(len(arg) for arg in command)
    if total > MAX_COMMAND_CHARS:
        raise ValueError(
            f"the command is {total} characters long; at most {MAX_COMMAND_CHARS} are allowed"
        )
    return command


# What a job's script trains with. auto: tensorflow when its entrypoint imports tensorflow,
# tf_keras or keras (on TensorFlow), else pytorch; decided where the code is unpacked.
Framework = Literal["auto", "pytorch", "tensorflow"]
JOBS_EXPERIMENT = "jobs"  # where jobs' runs go unless told; in a project P: "P-jobs"


class JobTemplate(Wire):
    """What runs and on what: a job's request less its name (a tuning job's trials share
    one template and get their names from it)."""

    entrypoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Script inside the source, run with Python (under torchrun for several "
        "processes per node). Give this or command.",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COMMAND_ARGS,
        description="A program and its arguments (an argv, not a shell line), run once per "
        "node in code/ instead of a Python entrypoint, as SageMaker runs a container's "
        "ContainerEntrypoint + ContainerArguments. /opt/ml in it (and in the environment's "
        "values) names the host's own job directory. Give this or entrypoint.",
    )
    source_uri: str | None = Field(
        default=None,
        description="What PUT /sources answered for the source snapshot, unpacked into code/. "
        "Required with entrypoint; optional with command (code/ is then empty and the code "
        "comes in an input channel).",
    )
    experiment: str = Field(
        default=JOBS_EXPERIMENT,
        min_length=1,
        max_length=200,
        description="Its run's experiment (default: jobs; in project P, P-jobs).",
    )
    hyperparameters: dict[str, ParamValue] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict, description="channel -> file:// or s3://")
    nodes: int = Field(
        default=1, ge=1, le=1024, description="Nodes; with max_nodes, the fewest it runs on."
    )
    max_nodes: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Elastic: the most nodes the job grows to. It starts once `nodes` fit, "
        "grows as room frees, and carries on when nodes are lost, down to `nodes` "
        "(torchrun's --nnodes MIN:MAX). None: exactly `nodes`.",
    )
    processes_per_node: int = Field(default=1, ge=1, le=1024)
    framework: Framework = Field(
        default="auto",
        description="tensorflow: each process gets TF_CONFIG for MultiWorkerMirroredStrategy "
        "and Naiad's Keras callback; pytorch: torchrun's environment alone; auto: tensorflow "
        "when the entrypoint imports tensorflow, tf_keras or keras, else pytorch.",
    )
    gpus: int = Field(default=0, ge=0, le=1024, description="GPUs per node.")
    memory_mb: int | None = Field(
        default=None,
        ge=16,
        le=64 * 1024 * 1024,
        description="A limit on the memory of the job's processes on each node (their "
        "proportional set sizes, summed); past it the job fails with OutOfMemory.",
    )
    max_runtime_s: int | None = Field(default=None, ge=1, le=MAX_RUNTIME_S)
    max_retries: int = Field(default=0, ge=0, le=100)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    metric_definitions: list[MetricDefinition] = Field(
        default_factory=list, max_length=40, description="Metrics parsed from the job's log."
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Variables set in every process of the job; Naiad's own (SM_*, NAIAD_*, "
        "torch.distributed's) win on a clash.",
    )
    channels: dict[str, ChannelOptions] = Field(
        default_factory=dict, description="Options per input channel (each one in inputs)."
    )
    checkpoint_uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Where checkpoints/ is mirrored and restored from: a path in the "
        "artifact store or an s3:// URI (default: jobs/<name>/checkpoints).",
    )
    opt_ml_channels: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Input channels whose text files name SageMaker's container paths "
        "(/opt/ml/...), for a command job: each host gets its own copy with those paths "
        "pointing at its job directory (the SageMaker SDK v3's sm_drivers channel).",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, command: list[str] | None) -> list[str] | None:
        return None if command is None else _check_command(command)

    @model_validator(mode="after")
    def _what_runs(self) -> Self:
        if (self.entrypoint is None) == (self.command is None):
            raise ValueError(
                "give either entrypoint (a Python script in the source) or command (a program "
                "and its arguments), not both and not neither"
            )
        if self.entrypoint is not None and self.source_uri is None:
            raise ValueError(
                "an entrypoint runs from a source snapshot: give source_uri (what PUT "
                "/api/v1/sources answered)"
            )
        if self.command is not None and self.processes_per_node != 1:
            raise ValueError(
                f"a command runs as one process per node, but processes_per_node is "
                f"{self.processes_per_node}; set it to 1 (the command may start more itself)"
            )
        if self.max_nodes is not None and self.max_nodes < self.nodes:
            raise ValueError(
                f"max_nodes ({self.max_nodes}) is below nodes ({self.nodes}); an elastic job "
                "runs on nodes..max_nodes, so give max_nodes >= nodes"
            )
        if self.max_nodes is not None and self.command is not None:
            raise ValueError(
                "an elastic job (max_nodes) runs a Python entrypoint under torchrun's elastic "
                "rendezvous; a command cannot re-form its world, so drop max_nodes or give "
                "an entrypoint"
            )
        if self.max_nodes is not None and self.framework == "tensorflow":
            raise ValueError(
                "an elastic job (max_nodes) re-forms a torch.distributed world; "
                "MultiWorkerMirroredStrategy's cluster is fixed at start, so drop max_nodes "
                "for a TensorFlow job"
            )
        if self.opt_ml_channels and self.command is None:
            raise ValueError("opt_ml_channels is for a command job; give command too")
        unknown = sorted(set(self.opt_ml_channels) - set(self.inputs))
        if unknown:
            raise ValueError(
                f"opt_ml_channels names {', '.join(map(repr, unknown))}, not in inputs; "
                "name an input channel"
            )
        return self

    @field_validator("environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> dict[str, str]:
        return _check_environment(environment)

    @model_validator(mode="after")
    def _channels_are_inputs(self) -> Self:
        unknown = sorted(set(self.channels) - set(self.inputs))
        if unknown:
            have = ", ".join(map(repr, sorted(self.inputs))) or "none"
            raise ValueError(
                f"channel options are given for {', '.join(map(repr, unknown))}, which "
                f"{'is' if len(unknown) == 1 else 'are'} not in inputs (it has: {have}); "
                "name an input channel"
            )
        return self

    @model_validator(mode="after")
    def _table_channels(self) -> Self:
        for name, uri in self.inputs.items():
            problem = table_problem(uri, self.channels.get(name) or ChannelOptions())
            if problem:
                raise ValueError(f"channel {name!r}: {problem}")
        return self

    @field_validator("hyperparameters")
    @classmethod
    def _json_safe(cls, values: dict[str, ParamValue]) -> dict[str, ParamValue]:
        return {key: _wire_value(value) for key, value in values.items()}

    @field_validator("metric_definitions")
    @classmethod
    def _unique(cls, definitions: list[MetricDefinition]) -> list[MetricDefinition]:
        names = [d.name for d in definitions]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metric {', '.join(map(repr, twice))} is defined more than once")
        return definitions


class JobCreate(JobTemplate):
    name: str = Field(min_length=1, max_length=63, description="Unique; letters, digits, '-'.")


class JobRerun(Wire):
    name: str | None = Field(
        default=None, min_length=1, max_length=63, description="The new job's (default NAME-rN)."
    )


class JobSpec(BaseModel):
    """What a job row stores of its request: the submission less its name and priority
    (columns of their own), plus where its outputs go. Checked once, on submission."""

    model_config = ConfigDict(frozen=True)

    entrypoint: str | None = None
    source_uri: str | None = None
    command: list[str] | None = None
    experiment: str
    hyperparameters: dict[str, ParamValue] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    output_uri: str
    nodes: int = 1
    max_nodes: int | None = None
    processes_per_node: int = 1
    framework: Framework = "auto"
    gpus: int = 0
    memory_mb: int | None = None
    max_runtime_s: int | None = None
    max_retries: int = 0
    metric_definitions: list[MetricDefinition] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    channels: dict[str, ChannelOptions] = Field(default_factory=dict)
    checkpoint_uri: str | None = None
    opt_ml_channels: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, body: JobCreate, output_uri: str) -> "JobSpec":
        fields = body.model_dump(exclude={"name", "priority"})
        return cls.model_validate({**fields, "output_uri": output_uri})

    @property
    def processes(self) -> int:
        """The slots the job holds: every process on every node it spans."""
        return self.nodes * self.processes_per_node


class Transition(BaseModel):
    status: str
    reason: str | None = None
    at: Timestamp


class JobEvent(BaseModel):
    """An elastic job's world changing size: from how many workers to how many, why, and
    at which training step it resumed (None when the script does not say)."""

    at: Timestamp
    from_workers: int
    to_workers: int
    step: int | None = None
    reason: str


class TrainingJob(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    entrypoint: str | None = None
    source_uri: str | None = None
    command: list[str] | None = None
    experiment: str
    run_id: str
    hyperparameters: dict[str, ParamValue]
    inputs: dict[str, str]
    output_uri: str
    nodes: int
    max_nodes: int | None = None
    processes_per_node: int
    framework: Framework = "auto"
    gpus: int
    memory_mb: int | None = None
    max_runtime_s: int | None
    max_retries: int
    priority: int
    metric_definitions: list[MetricDefinition] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    channels: dict[str, ChannelOptions] = Field(default_factory=dict)
    checkpoint_uri: str | None = None
    opt_ml_channels: list[str] = Field(default_factory=list)
    attempt: int
    created_at: Timestamp
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    transitions: list[Transition] = Field(default_factory=list)
    events: list[JobEvent] = Field(
        default_factory=list, description="An elastic job's resizes, oldest first."
    )
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )
    project: str = Field(default="default", description="The project it belongs to.")


class SourceUploaded(BaseModel):
    source_uri: str
    size: int


class JobLogs(BaseModel):
    text: str
    offset: int = Field(description="Pass back as ?offset= to get only what came after.")
    complete: bool = Field(description="True when the job has ended and nothing more will come.")

"""Endpoint wire models: variants (a model version, its traffic weight and replicas, fixed
or autoscaled), batching, and the live figures the server keeps for each variant; and
``EndpointSpec``, what an endpoint row stores and the endpoint keeper reconciles towards."""

from pydantic import BaseModel, ConfigDict, Field

from naiad.schemas.common import Timestamp, Wire

# How the reason of an update that could not start its replicas begins: the endpoint is
# InService again on its previous variants.
ROLLED_BACK = "The update was rolled back"


class AutoscalingSpec(Wire):
    """Replicas that follow the load: added when the requests in flight per replica stay
    above the target, removed when fewer would do, down to zero when ``min_replicas`` is 0
    (the next request then waits while one starts). See docs/serving.md."""

    min_replicas: int = Field(default=1, ge=0, le=32, description="Never fewer; 0 scales to zero.")
    max_replicas: int = Field(ge=1, le=32, description="Never more.")
    target_in_flight: float = Field(
        default=8.0, gt=0, le=10_000, description="Requests in flight per replica to aim at."
    )
    scale_up_after_s: float = Field(
        default=10.0, ge=0, le=3600, description="Above the target this long: replicas are added."
    )
    scale_down_after_s: float = Field(
        default=60.0, ge=0, le=86400, description="Fewer replicas would do this long: removed."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, le=3600, description="After a change, no other change this long."
    )
    idle_after_s: float = Field(
        default=300.0,
        ge=0,
        le=7 * 86400,
        description="With min_replicas 0: no request this long stops the last replica.",
    )
    cold_start_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="With min_replicas 0: how long a request waits for a replica to start.",
    )


class VariantSpec(Wire):
    model: str = Field(description="NAME, NAME:VERSION or NAME@ALIAS; resolved at deploy time.")
    name: str | None = Field(default=None, max_length=63, description="Defaults to NAME-vN.")
    weight: float = Field(default=1.0, ge=0, le=1e6, description="Relative share of traffic.")
    replicas: int = Field(
        default=1,
        ge=1,
        le=64,
        description="The fixed count; with autoscaling, the count it starts at (kept within "
        "min..max, and at least 1).",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Follow the load between min and max replicas."
    )


class BatchingSpec(Wire):
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_delay_ms: float = Field(default=5.0, ge=0, le=10_000)
    queue_size: int = Field(default=1024, ge=1, le=1_000_000)


class CaptureSpec(Wire):
    fraction: float = Field(default=0.0, ge=0, le=1, description="Share of requests captured.")


class EndpointCreate(Wire):
    name: str = Field(min_length=1, max_length=63)
    variants: list[VariantSpec] = Field(min_length=1, max_length=8)
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)


class EndpointUpdate(Wire):
    """Replace the variants (a rollout) and/or the batching; unset fields stay as they are."""

    variants: list[VariantSpec] | None = Field(default=None, min_length=1, max_length=8)
    batching: BatchingSpec | None = None
    capture: CaptureSpec | None = None


class ResolvedVariant(BaseModel):
    """A variant as deployed: its model resolved to one version, and ``key``, its replicas'
    directory, new for every deployment whose replicas cannot be reused (another version,
    other batching), so a rollout never touches the processes that serve while it runs."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str
    model: str  # NAME:VERSION
    version_id: str
    artifact_uri: str
    weight: float
    replicas: int  # the count now: fixed, or where autoscaling has taken it
    autoscaling: AutoscalingSpec | None = None

    def slots(self) -> set[tuple[str, int]]:
        """(key, index) of each of its replicas."""
        return {(self.key, i) for i in range(self.replicas)}


class Rollout(BaseModel):
    """Variants and the flags their replicas start with: what an endpoint serves, or is
    rolling out to."""

    model_config = ConfigDict(frozen=True)

    variants: list[ResolvedVariant]
    batching: BatchingSpec
    capture: CaptureSpec

    def slots(self) -> set[tuple[str, int]]:
        return {slot for v in self.variants for slot in v.slots()}


class EndpointSpec(Rollout):
    """What an endpoint row stores: what the routing table serves now (no variants until
    the first rollout is healthy) and ``pending``, what a Creating or Updating endpoint
    rolls out to. Frozen: a change is a new spec (``model_copy``), so the column sees it."""

    generation: int = 1  # counts rollouts; names the directories of new replicas
    pending: Rollout | None = None

    def every_variant(self) -> list[ResolvedVariant]:
        """Serving and rolling out: what deleting a model or pruning the cache must spare."""
        return [*self.variants, *(self.pending.variants if self.pending else [])]


class Replica(BaseModel):
    index: int
    port: int | None = None
    pid: int | None = None
    healthy: bool = False
    restarts: int = 0


class Variant(BaseModel):
    name: str
    model: str = Field(description="The resolved NAME:VERSION it serves.")
    weight: float
    replicas: int = Field(description="The count now: fixed, or where autoscaling has taken it.")
    autoscaling: AutoscalingSpec | None = None
    live: list[Replica] = Field(default_factory=list)


class Transition(BaseModel):
    status: str
    reason: str | None = None
    at: Timestamp


class ScalingEvent(BaseModel):
    """One autoscaling decision the keeper took: a variant's replicas from one count to
    another, and why."""

    variant: str
    from_replicas: int
    to_replicas: int
    reason: str
    at: Timestamp


class Endpoint(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    url: str = Field(description="POST here: the server balances over the replicas.")
    variants: list[Variant] = Field(description="What the traffic goes to now.")
    pending_variants: list[Variant] = Field(
        default_factory=list, description="What a Creating or Updating endpoint rolls out to."
    )
    batching: BatchingSpec
    capture: CaptureSpec
    created_at: Timestamp
    updated_at: Timestamp
    transitions: list[Transition] = Field(default_factory=list)
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )
    project: str = Field(default="default", description="The project it belongs to.")
    scaling_events: list[ScalingEvent] = Field(
        default_factory=list, description="The latest autoscaling decisions, oldest first."
    )


class LatencyFigures(BaseModel):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class VariantMetrics(BaseModel):
    """One variant: totals since the server began watching it, rates over the last window."""

    variant: str
    model: str = ""
    requests: int = Field(description="Invocations its replicas answered.")
    errors: int = Field(description="Of those, answered 5xx.")
    client_errors: int = Field(default=0, description="Of those, refused 4xx (bad input).")
    rps: float = Field(description="Requests per second over the window.")
    latency: LatencyFigures = Field(
        description="Inside the replicas (queue, batch, model), from their histograms."
    )
    proxy_latency: LatencyFigures = Field(
        default_factory=LatencyFigures, description="Through the server's proxy, end to end."
    )
    batch_sizes: dict[str, int] = Field(
        default_factory=dict, description="rows per batch (a range) -> batches, over the window"
    )
    queue_depth: int = 0
    in_flight: int = 0
    replicas_healthy: int = 0


class MetricsPoint(BaseModel):
    at: float = Field(description="Unix time: a scrape's, or the start of a history step.")
    rps: float = Field(description="Requests per second over the seconds observed.")
    requests: int = 0
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    batch_mean: float | None = None
    queue_depth: int = Field(
        default=0, description="Requests waiting: at the scrape, or the most in a history step."
    )


class EndpointMetrics(BaseModel):
    endpoint: str
    window_s: float
    variants: list[VariantMetrics]
    retries: int = Field(default=0, description="Requests the proxy re-sent to another replica.")
    unavailable: int = Field(
        default=0, description="Requests answered 503 because no replica was healthy."
    )
    history: dict[str, list[MetricsPoint]] = Field(
        default_factory=dict, description="variant -> points over time (throughput, latency)"
    )


class EndpointHistory(BaseModel):
    """An endpoint's traffic over a longer span, from minutes the server saved."""

    endpoint: str
    since_s: float = Field(description="How far back the history goes.")
    step_s: int = Field(description="Seconds each point sums (a multiple of 60).")
    variants: dict[str, list[MetricsPoint]] = Field(
        default_factory=dict, description="variant -> one point per step that saw traffic"
    )

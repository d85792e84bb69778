"""client.endpoints: deploy a registered model behind an HTTP endpoint, roll out, watch.

endpoint = client.endpoints.deploy("digits", model="digits@production", replicas=2)
endpoint.wait()
labels = endpoint.predict(images).argmax(axis=1)   # numpy in, numpy out (.npy on the wire)
client.endpoints.update("digits", model="digits:2", canary=10)
client.endpoints.update("digits", min_replicas=0, max_replicas=4)   # autoscale, to zero
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from naiad.core.errors import InvalidInput, NaiadError, ServerUnreachable
from naiad.schemas.endpoints import (
    ROLLED_BACK,
    Endpoint,
    EndpointHistory,
    EndpointMetrics,
    Variant,
)
from naiad.sdk.http import Transport, raise_for

if TYPE_CHECKING:
    import numpy as np

# Variants as plain dicts: {"model", "name"?, "weight"?, "replicas"?, "autoscaling"?}.
VariantDicts = list[dict[str, Any]]

NPY = "application/x-npy"
JSON = "application/json"
SERVING = "InService"


class EndpointFailed(NaiadError):
    """The endpoint could not reach InService; the message says why."""

    status_code = 409
    code = "endpoint_failed"


class EndpointHandle:
    """One endpoint: ``predict``, ``invoke``, ``wait``, ``metrics``, ``update``, ``delete``."""

    def __init__(self, endpoints: Endpoints, endpoint: Endpoint, rollout: bool = False) -> None:
        self._endpoints = endpoints
        self.endpoint = endpoint
        self.name = endpoint.name
        # For a handle an update returned: where its rollout starts in the timeline.
        self._rollout_at = len(endpoint.transitions) - 1 if rollout else None

    def __repr__(self) -> str:
        return f"EndpointHandle({self.name!r}, status={self.endpoint.status!r})"

    def refresh(self) -> Endpoint:
        self.endpoint = self._endpoints.get(self.name).endpoint
        return self.endpoint

    @property
    def status(self) -> str:
        return self.refresh().status

    def wait(
        self, timeout: float | None = 300.0, poll: float = 0.5, progress: bool = False
    ) -> Endpoint:
        """Block until the endpoint is InService with nothing left to roll out.

        Raises EndpointFailed when it fails, or when the rollout of the update that returned
        this handle was undone (the reason says why); TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            endpoint = self.refresh()
            line = (endpoint.status, endpoint.status_reason)
            if progress and line != seen:
                print(f"{endpoint.name}: {endpoint.status} - {endpoint.status_reason or ''}")
                seen = line
            if endpoint.status == "Failed":
                raise EndpointFailed(f"Endpoint {self.name} failed: {endpoint.status_reason}")
            if endpoint.status == SERVING and not endpoint.pending_variants:
                if self._rollout_at is not None:
                    for t in endpoint.transitions[self._rollout_at :]:
                        if (t.reason or "").startswith(ROLLED_BACK):
                            raise EndpointFailed(t.reason)
                return endpoint
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Endpoint {self.name} is still {endpoint.status} after {timeout}s "
                    f"({endpoint.status_reason})."
                )
            time.sleep(poll)

    def predict(self, inputs: Any) -> np.ndarray:
        """Run the model on a batch: numpy (or nested lists) in, numpy out."""
        return self._endpoints.predict(self.name, inputs)

    def invoke(self, body: Any, content_type: str = JSON, accept: str | None = None) -> Any:
        return self._endpoints.invoke(self.name, body, content_type, accept)

    def metrics(self, window: float = 10.0, points: int = 120) -> EndpointMetrics:
        return self._endpoints.metrics(self.name, window, points)

    def history(self, since: float = 3600.0, step: int | None = None) -> EndpointHistory:
        return self._endpoints.history(self.name, since, step)

    def update(self, **changes: Any) -> EndpointHandle:
        """As ``client.endpoints.update(name, ...)``; a new handle that ``wait`` checks."""
        return self._endpoints.update(self.name, **changes)

    def delete(self, wait: bool = False) -> None:
        self._endpoints.delete(self.name, wait=wait)


def _batching(
    current: dict[str, Any] | None,
    max_batch: int | None,
    max_delay_ms: float | None,
    queue_size: int | None,
) -> dict[str, Any] | None:
    given = {"max_batch": max_batch, "max_delay_ms": max_delay_ms, "queue_size": queue_size}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    return {**(current or {}), **given}


# min_replicas, max_replicas, target_in_flight and the rest of the policy (a dict).
AutoscalingChanges = tuple[int | None, int | None, float | None, dict[str, Any] | None]


def _with_autoscaling(
    variant: dict[str, Any], current: dict[str, Any] | None, changes: AutoscalingChanges
) -> dict[str, Any]:
    """``variant`` with ``current``'s autoscaling and ``changes`` on top (none: as it is)."""
    block = _autoscaling(current, *changes) or current
    return {**variant, "autoscaling": block} if block else variant


def _variant(v: Variant, replicas: int | None, changes: AutoscalingChanges) -> dict[str, Any]:
    """A serving variant as an update sends it back: ``replicas`` alone fixes its count (its
    autoscaling off); ``changes`` go on top of its autoscaling; else as it is."""
    fixed = replicas is not None and all(c is None for c in changes)
    base = {"model": v.model, "name": v.name, "weight": v.weight}
    if fixed:
        return {**base, "replicas": replicas}
    current = v.autoscaling.model_dump() if v.autoscaling else None
    return _with_autoscaling({**base, "replicas": max(replicas or v.replicas, 1)}, current, changes)


def _autoscaling(
    current: dict[str, Any] | None,
    min_replicas: int | None,
    max_replicas: int | None,
    target_in_flight: float | None,
    more: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The autoscaling block: ``current`` with what was given on top; None when nothing was."""
    given = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target_in_flight": target_in_flight,
    }
    given = {**(more or {}), **{k: v for k, v in given.items() if v is not None}}
    if not given:
        return None
    block = {**(current or {}), **given}
    if "max_replicas" not in block:
        raise InvalidInput(
            "Autoscaling needs max_replicas=N, the most replicas a variant may run; "
            "min_replicas defaults to 1 (0 scales to zero when idle)."
        )
    return block


class Endpoints:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def deploy(
        self,
        name: str,
        model: str | None = None,
        replicas: int = 1,
        *,
        variants: VariantDicts | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_in_flight: float | None = None,
        autoscaling: dict[str, Any] | None = None,
        max_batch: int | None = None,
        max_delay_ms: float | None = None,
        queue_size: int | None = None,
        capture_fraction: float = 0.0,
        wait: bool = False,
        timeout: float | None = 300.0,
    ) -> EndpointHandle:
        """Serve ``model`` (NAME, NAME:VERSION or NAME@ALIAS) on ``replicas`` processes, or
        several ``variants`` (dicts of model, name, weight, replicas, autoscaling) sharing
        the traffic. ``max_replicas`` (with ``min_replicas``, ``target_in_flight`` and the
        rest of the policy in ``autoscaling``) makes the count follow the load, starting at
        ``replicas``; ``min_replicas=0`` stops every replica when idle."""
        if (model is None) == (variants is None):
            raise InvalidInput("Give exactly one of model= or variants=.")
        scaling = _autoscaling(None, min_replicas, max_replicas, target_in_flight, autoscaling)
        if variants is None:
            variants = [{"model": model, "replicas": replicas}]
            if scaling:
                variants[0]["autoscaling"] = scaling
        elif scaling:
            raise InvalidInput("With variants=, give each variant its own 'autoscaling' block.")
        body: dict[str, Any] = {
            "name": name,
            "variants": variants,
            "capture": {"fraction": capture_fraction},
        }
        batching = _batching(None, max_batch, max_delay_ms, queue_size)
        if batching:
            body["batching"] = batching
        endpoint = Endpoint.model_validate(self._t.request("POST", "/endpoints", json=body))
        handle = EndpointHandle(self, endpoint)
        if wait:
            handle.wait(timeout)
        return handle

    def get(self, name: str) -> EndpointHandle:
        return EndpointHandle(
            self, Endpoint.model_validate(self._t.request("GET", f"/endpoints/{name}"))
        )

    def list(self, created_by: str | None = None) -> list[Endpoint]:
        params = {"created_by": created_by} if created_by else None
        items = self._t.request("GET", "/endpoints", params=params)
        return [Endpoint.model_validate(e) for e in items]

    def update(
        self,
        name: str,
        model: str | None = None,
        *,
        canary: float | None = None,
        replicas: int | None = None,
        variants: VariantDicts | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_in_flight: float | None = None,
        autoscaling: dict[str, Any] | None = None,
        max_batch: int | None = None,
        max_delay_ms: float | None = None,
        queue_size: int | None = None,
        capture_fraction: float | None = None,
        wait: bool = False,
        timeout: float | None = 300.0,
    ) -> EndpointHandle:
        """Roll out a change. ``model`` alone replaces every variant with that model (its
        autoscaling kept); with ``canary=10`` it gets 10% of the traffic and the current
        variants keep 90%; ``replicas`` alone gives every variant that fixed count
        (autoscaling off); ``min_replicas``/``max_replicas``/``target_in_flight``/
        ``autoscaling`` alone change every variant's autoscaling (on top of what it has);
        ``variants`` sets them outright."""
        current = self.get(name).endpoint
        changes = (min_replicas, max_replicas, target_in_flight, autoscaling)
        body: dict[str, Any] = {}
        if variants is not None:
            body["variants"] = variants
        elif model is not None:
            body["variants"] = self._with_model(current, model, canary, replicas, changes)
        elif canary is not None:
            raise InvalidInput("A canary needs the model it sends traffic to (model=...).")
        elif replicas is not None or any(c is not None for c in changes):
            body["variants"] = [_variant(v, replicas, changes) for v in current.variants]
        batching = _batching(current.batching.model_dump(), max_batch, max_delay_ms, queue_size)
        if batching:
            body["batching"] = batching
        if capture_fraction is not None:
            body["capture"] = {"fraction": capture_fraction}
        if not body:
            raise InvalidInput(
                "Nothing to update: give a model, replicas, autoscaling, variants, batching "
                "or capture."
            )
        updated = Endpoint.model_validate(self._t.request("PATCH", f"/endpoints/{name}", json=body))
        handle = EndpointHandle(self, updated, rollout=True)
        if wait:
            handle.wait(timeout)
        return handle

    @staticmethod
    def _with_model(
        current: Endpoint,
        model: str,
        canary: float | None,
        replicas: int | None,
        changes: AutoscalingChanges,
    ) -> VariantDicts:
        if canary is None:
            count = replicas or max((v.replicas for v in current.variants), default=1)
            scaled = next((v.autoscaling for v in current.variants if v.autoscaling), None)
            fixed = replicas is not None and all(c is None for c in changes)
            kept = scaled.model_dump() if scaled and not fixed else None
            return [_with_autoscaling({"model": model, "replicas": max(count, 1)}, kept, changes)]
        if not 0 < canary < 100:
            raise InvalidInput(
                f"canary is a percentage of the traffic, above 0 and below 100; got {canary}."
            )
        total = sum(v.weight for v in current.variants) or 1.0
        kept_variants = [
            {
                **_variant(v, None, (None, None, None, None)),
                "weight": round(v.weight / total * (100 - canary), 6),
            }
            for v in current.variants
        ]
        new = {"model": model, "weight": canary, "replicas": replicas or 1}
        return [*kept_variants, _with_autoscaling(new, None, changes)]

    def delete(self, name: str, wait: bool = False, timeout: float = 120.0) -> None:
        """Stop the endpoint; with ``wait``, return once it is gone."""
        self._t.request("DELETE", f"/endpoints/{name}")
        deadline = time.monotonic() + timeout
        while wait:
            try:
                self._t.request("GET", f"/endpoints/{name}")
            except NaiadError as exc:
                if getattr(exc, "status_code", None) == 404:
                    return
                raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"Endpoint {name} is still being deleted after {timeout}s.")
            time.sleep(0.25)

    def metrics(self, name: str, window: float = 10.0, points: int = 120) -> EndpointMetrics:
        params = {"window": window, "points": points}
        return EndpointMetrics.model_validate(
            self._t.request("GET", f"/endpoints/{name}/metrics", params=params)
        )

    def history(self, name: str, since: float = 3600.0, step: int | None = None) -> EndpointHistory:
        """Traffic per variant over the last ``since`` seconds, one point per ``step``
        seconds (a multiple of 60; by default at most 720 points), from saved minutes."""
        params: dict[str, float | int] = {"since": since}
        if step is not None:
            params["step"] = step
        return EndpointHistory.model_validate(
            self._t.request("GET", f"/endpoints/{name}/metrics/history", params=params)
        )

    # -- invocations ------------------------------------------------------------------------
    def _post(
        self, name: str, content: bytes, content_type: str, accept: str | None
    ) -> httpx.Response:
        headers = {"content-type": content_type}
        if accept:
            headers["accept"] = accept
        url = f"{self._t.url}/endpoints/{name}/invocations"
        try:
            response = self._t.http.post(url, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"Cannot reach the Naiad server at {self._t.url} ({exc.__class__.__name__})."
            ) from None
        raise_for(response)
        return response

    def invoke(
        self, name: str, body: Any, content_type: str = JSON, accept: str | None = None
    ) -> Any:
        """POST ``body`` (bytes as they are; anything else as JSON); the decoded JSON answer,
        or the raw bytes when the answer is not JSON."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        response = self._post(name, content, content_type, accept)
        if response.headers.get("content-type", "").startswith(JSON):
            return orjson.loads(response.content)
        return response.content

    def predict(self, name: str, inputs: Any) -> np.ndarray:
        """numpy in, numpy out: the batch travels as .npy both ways (never pickled)."""
        import numpy as np

        array = np.ascontiguousarray(np.asarray(inputs))
        if array.dtype == object:
            raise InvalidInput("predict takes numbers: a numpy array or nested lists of numbers.")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        response = self._post(name, buffer.getvalue(), NPY, NPY)
        return np.load(io.BytesIO(response.content), allow_pickle=False)

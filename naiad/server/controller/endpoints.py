"""The endpoint keeper: a loop that keeps every endpoint's replicas as its spec asks.

Each tick (half a second, or at once when woken by a deploy, an update or a delete):
1. every replica is checked (``managed.replicas``): a dead one is started again, counted in
   its ``restarts``; on the first tick after a server start the replicas a previous
   server left running are found again by their directories and re-attached;
2. each endpoint moves towards its spec: a Creating or Updating endpoint gets the
   replicas of its pending variants; once all answer /ping the routing table switches to
   them in one step (InService), and the replicas nothing needs any more are drained
   (SIGTERM: they finish what they hold) and stopped (SIGKILL after a grace). A rollout
   whose replicas cannot start is undone; an endpoint with nothing left to serve is
   Failed with the replica's last words. Deleting stops everything, then the row goes;
3. the routing table is published to the proxy (``router``);
4. about once a second the replicas' ``/stats`` are scraped into the metrics book, every
   few seconds captured requests are moved to the artifact store, and every minute (and
   on close) the book's new points are saved as minutes (``endpoint_history``).

An autoscaled variant's count follows its load (``autoscale.decide`` on the book's last
scrape, before step 2; each change is a scaling event on the endpoint). One scaled to zero
stays in the routing table with no replica: a request for it makes the router call
``cold_start``, which asks for a replica, ticks fast until it answers, and lets the
request through; a standby replica with torch imported (``fleet.standby``, kept while an
endpoint autoscales) makes that start short.
"""

import asyncio
import logging
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from naiad.core.status import EndpointStatus
from naiad.schemas.endpoints import ROLLED_BACK, Replica, ResolvedVariant, Rollout
from naiad.server.controller import autoscale
from naiad.server.controller.loop import ReconcileLoop
from naiad.server.managed import replicas
from naiad.server.managed.model_cache import ModelCache
from naiad.server.managed.replicas import ReplicaProcess, ReplicaSet
from naiad.server.proxy.inference import Router, VariantRoute
from naiad.server.state import AppState
from naiad.server.traffic import history as endpoint_history
from naiad.server.traffic.book import MetricsBook, Point
from naiad.store import endpoint_minutes, endpoints
from naiad.store.db import transaction
from naiad.store.tables import EndpointRow

log = logging.getLogger("naiad.endpoints")

MAX_FAILED_STARTS = 3  # starts in a row that never answered /ping: the variant has failed
ROLLOUT_FAILED_STARTS = 2  # ...and for replicas of a rollout, which can be undone instead
PRUNE_EVERY_S = 60.0
ROUTED = (EndpointStatus.IN_SERVICE.value, EndpointStatus.UPDATING.value)
FAST_TICK_S = 0.02  # the tick while a request waits for a replica to start
COLD_POLL_S = 0.01  # how often that request looks for one in the routing table
FRESH_POINT_S = 3.0  # a scrape older than this says nothing about the load now


class EndpointKeeper(ReconcileLoop):
    name = "naiad-keeper"
    wakes_on = (EndpointRow,)  # a deploy, an update or a delete

    def __init__(
        self,
        state: AppState,
        interval: float = 0.5,
        start_timeout_s: float = 180.0,
        stop_grace_s: float = 35.0,
        scrape_interval_s: float = 1.0,
        capture_interval_s: float = 10.0,
        history_interval_s: float = 60.0,
    ) -> None:
        super().__init__(interval, log)
        self.base_interval = interval
        self.state = state
        self.scrape_interval_s = scrape_interval_s
        self.capture_interval_s = capture_interval_s
        self.history_interval_s = history_interval_s
        self.cache = ModelCache(state.settings.layout.model_cache, state.artifacts)
        self.book = MetricsBook()
        self.router = Router(self.book)
        self._http = httpx.Client(timeout=2.0, trust_env=False)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="naiad-keeper")
        self.fleet = ReplicaSet(
            state.settings.layout.endpoints,
            self._pool,
            self._http,
            start_timeout_s,
            stop_grace_s,
            state.settings.orphan_grace_s,
        )
        self._capture_job: Future[None] | None = None
        self._adopted = False
        self._abandoned = False
        self._last = {"scrape": 0.0, "capture": 0.0, "prune": 0.0, "history": time.monotonic()}
        self._memory: dict[tuple[str, str], autoscale.Memory] = {}  # (endpoint, variant key)
        # Requests waiting for a cold start, by endpoint (the server's event loop counts them),
        # and the endpoints that scale to zero with how long a request may wait (each tick).
        self._waiting: Counter[str] = Counter()
        self._cold: dict[str, float] = {}
        self.router.on_idle = self.cold_start

    def start(self) -> None:
        self.router.open()  # on the server's event loop, which forwards the requests
        super().start()

    async def stop(self) -> None:
        self.close()
        await self.router.aclose()

    def close(self) -> None:
        """Stop watching; the replicas keep serving for the next server to re-attach."""
        self.stop_loop()
        self.save_history()
        self.fleet.standby.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.cache.close()
        self._http.close()

    def live(self, endpoint: str) -> dict[str, list[Replica]]:
        return self.fleet.live(endpoint)

    def replica_logs(self, endpoint: str, max_bytes: int) -> dict[tuple[str, int], str]:
        """The log of each of the endpoint's replicas on this machine, by (key, index),
        from its beginning (at most ``max_bytes``)."""
        return {(p.key, p.index): p.log_head(max_bytes) for p in self.fleet.of(endpoint)}

    # -- the tick -----------------------------------------------------------------------
    def tick(self) -> None:
        lost = self.state.home.lost()
        if lost is not None:
            self._abandon(lost)
            return
        if not self._adopted:
            self.fleet.adopt()
            self._adopted = True
        self.fleet.check()
        with transaction(self.state.sessions) as session:
            rows = endpoints.list_all(session, lock=True)
            for row in rows:
                self._autoscale(session, row)
                self._reconcile(session, row)
            table = {row.name: self._routes(row) for row in rows if row.status in ROUTED}
            names = {row.name for row in rows}
            versions = {v.version_id for row in rows for v in row.spec.every_variant()}
            self._cold = {row.name: t for row in rows if (t := _cold_wait(row)) is not None}
            scaled = {(row.name, v.key) for row in rows for v in row.spec.variants if v.autoscaling}
        self.router.publish(table)
        self._memory = {k: m for k, m in self._memory.items() if k in scaled}
        self.fleet.standby.keep(bool(scaled) and self.state.settings.warm_start, time.monotonic())
        self.interval = FAST_TICK_S if self._waiting else self.base_interval
        for proc in self.fleet.all():
            if proc.endpoint not in names and proc.retire_at is None:
                self.fleet.retire(proc)
        self.fleet.step(gone=self._upload_capture_dir)
        now = time.monotonic()
        if now - self._last["scrape"] >= self.scrape_interval_s:
            self._last["scrape"] = now
            self._scrape(table)
        if now - self._last["capture"] >= self.capture_interval_s:
            self._last["capture"] = now
            self._upload_captures()
        if now - self._last["prune"] >= PRUNE_EVERY_S:
            self._last["prune"] = now
            self.cache.prune(versions | {p.version_id for p in self.fleet.all()})
        if now - self._last["history"] >= self.history_interval_s:
            self._last["history"] = now
            self.save_history()

    def _abandon(self, reason: str) -> None:
        """The home is gone, and with it every record of the replicas: drain and end them now,
        rather than leave them serving with nothing to manage them; later ticks reap them."""
        if self._abandoned:
            for proc in self.fleet.all():
                proc.alive()  # waits for an ended child, so none is left a zombie
            return
        self._abandoned = True
        log.error("%s", reason)
        self.router.publish({})
        self.fleet.standby.close()
        for proc in self.fleet.all():
            if proc.pid is not None and proc.alive():
                proc.signal(signal.SIGTERM)

    # -- autoscaling ----------------------------------------------------------------------
    def _autoscale(self, session: Session, row: EndpointRow) -> None:
        """Each autoscaled variant of a settled endpoint to the count its load asks for; a
        rollout holds the counts until it is done."""
        spec = row.spec
        if row.status != EndpointStatus.IN_SERVICE.value or spec.pending is not None:
            return
        counts: dict[str, int] = {}
        for v in spec.variants:
            if v.autoscaling is None:
                continue
            seen = self._observe(row.name, v, spec.variants)
            if seen is None:
                continue
            key = (row.name, v.key)
            memory, decision = autoscale.decide(
                v.autoscaling, self._memory.get(key, autoscale.Memory()), seen
            )
            self._memory[key] = memory
            if decision is not None and decision.replicas != v.replicas:
                endpoints.record_scaling(
                    session, row, v.name, v.replicas, decision.replicas, decision.reason
                )
                log.info("endpoint %s, variant %s: %s", row.name, v.name, decision.reason)
                counts[v.key] = decision.replicas
        if counts:
            variants = [
                v.model_copy(update={"replicas": counts[v.key]}) if v.key in counts else v
                for v in spec.variants
            ]
            endpoints.set_spec(row, spec.model_copy(update={"variants": variants}))

    def _observe(
        self, endpoint: str, v: ResolvedVariant, variants: list[ResolvedVariant]
    ) -> autoscale.Observation | None:
        """The variant's load from the book's last scrape (None when there is none fresh);
        at zero, the demand for it: requests waiting, or traffic its siblings took."""
        now = time.monotonic()
        if v.replicas == 0:
            siblings = [self._fresh(endpoint, o.name) for o in variants if o.key != v.key]
            demand = self._waiting[endpoint] + sum(p.requests for p in siblings if p)
            return autoscale.Observation(now, 0, 0.0, 0, demand)
        point = self._fresh(endpoint, v.name)
        if point is None:
            return None
        # Little's law: seconds spent in requests per second of clock is the mean in flight.
        in_flight = max(point.busy_s, point.proxy_busy_s) / point.dt
        active = point.requests + point.in_flight + self._waiting[endpoint]
        return autoscale.Observation(now, v.replicas, in_flight, active)

    def _fresh(self, endpoint: str, variant: str) -> Point | None:
        point = self.book.latest(endpoint, variant)
        return point if point is not None and point.at >= time.time() - FRESH_POINT_S else None

    async def cold_start(self, endpoint: str) -> None:
        """The router's call when ``endpoint`` has no replica at all: when it scales to zero,
        ask for one and wait until the routing table has it, at most its
        ``cold_start_timeout_s`` (the router answers 503 if none came)."""
        timeout = self._cold.get(endpoint)
        if timeout is None:
            return
        self._waiting[endpoint] += 1
        self.wake()
        try:
            deadline = time.monotonic() + timeout
            while not any(route.targets for route in self.router.routes(endpoint) or ()):
                if time.monotonic() >= deadline:
                    log.warning("endpoint %s: no replica started within %gs", endpoint, timeout)
                    return
                await asyncio.sleep(COLD_POLL_S)
        finally:
            self._waiting[endpoint] -= 1
            if self._waiting[endpoint] <= 0:
                del self._waiting[endpoint]

    # -- one endpoint -------------------------------------------------------------------
    def _reconcile(self, session: Session, row: EndpointRow) -> None:
        status = EndpointStatus(row.status)
        if status in (EndpointStatus.DELETING, EndpointStatus.FAILED):
            mine = self.fleet.of(row.name)
            for proc in mine:
                if proc.retire_at is None:
                    self.fleet.retire(proc)
            if status == EndpointStatus.DELETING and not mine:
                shutil.rmtree(self.fleet.root / row.name, ignore_errors=True)
                self.book.forget(row.name)
                endpoints.delete_row(session, row)
            return
        spec = row.spec
        desired: dict[tuple[str, int], tuple[ResolvedVariant, Rollout]] = {}
        rollouts: list[Rollout] = [spec] if spec.pending is None else [spec, spec.pending]
        for rollout in rollouts:
            for v in rollout.variants:
                for i in range(v.replicas):
                    desired.setdefault((v.key, i), (v, rollout))
        for proc in self.fleet.of(row.name):
            if (proc.key, proc.index) not in desired and proc.retire_at is None:
                self.fleet.retire(proc)
        fetch_problems = {}
        for (key, index), (variant, rollout) in desired.items():
            problem = self._ensure(row.name, key, index, variant, rollout)
            if problem:
                fetch_problems[variant.name] = problem
        if spec.pending:
            self._rollout(session, row, spec.pending, fetch_problems)
        else:
            self._watch(session, row, fetch_problems)

    def _ensure(
        self, endpoint: str, key: str, index: int, variant: ResolvedVariant, rollout: Rollout
    ) -> str | None:
        """Start the replica when it is not running and its backoff is over. A slot wanted
        again while its replica still drains (scaled down, then up) gets a new one once that
        one is gone."""
        proc = self.fleet.slot(endpoint, key, index)
        if proc.retire_at is not None:
            return None
        proc.variant, proc.version_id = variant.name, variant.version_id
        if proc.pid is not None or time.monotonic() < proc.retry_at:
            return None
        model_dir = self.cache.fetch(variant.version_id, variant.artifact_uri)
        if not isinstance(model_dir, Path):
            return model_dir  # a sentence, or None while it downloads
        launch = replicas.Launch(
            model_dir=model_dir,
            max_batch=rollout.batching.max_batch,
            max_delay_ms=rollout.batching.max_delay_ms,
            queue_size=rollout.batching.queue_size,
            capture_fraction=rollout.capture.fraction,
        )
        self.fleet.start(proc, launch)
        return None

    def _rollout(
        self, session: Session, row: EndpointRow, pending: Rollout, fetch_problems: dict[str, str]
    ) -> None:
        spec = row.spec
        serving = spec.slots()
        wanted = pending.slots()
        procs = {(p.key, p.index): p for p in self.fleet.of(row.name)}
        failure = next(iter(fetch_problems.values()), None)
        for slot in wanted - serving:
            proc = procs.get(slot)
            if proc is not None and proc.failed_starts >= ROLLOUT_FAILED_STARTS:
                failure = failure or proc.failure
        if failure:
            endpoints.set_spec(row, spec.model_copy(update={"pending": None}))
            if spec.variants:
                reason = f"{ROLLED_BACK}; still serving {_describe(spec.variants)}. {failure}"
                endpoints.transition(session, row, EndpointStatus.IN_SERVICE, reason)
            else:
                endpoints.transition(session, row, EndpointStatus.FAILED, failure)
            return
        healthy = sum(1 for slot in wanted if slot in procs and procs[slot].healthy)
        if healthy < len(wanted):
            if row.status == EndpointStatus.CREATING:
                reason = f"{healthy} of {len(wanted)} replica(s) healthy."
                endpoints.transition(session, row, EndpointStatus.CREATING, reason)
            return
        variants = pending.variants
        switched = {"variants": variants, "batching": pending.batching, "capture": pending.capture}
        endpoints.set_spec(row, spec.model_copy(update={**switched, "pending": None}))
        endpoints.transition(
            session, row, EndpointStatus.IN_SERVICE, f"Serving {_describe(variants)}."
        )
        # The replicas only the old variants had leave on the next tick, after the switch.
        self.book.forget(row.name, keep={v.name for v in variants})

    def _watch(self, session: Session, row: EndpointRow, fetch_problems: dict[str, str]) -> None:
        """An InService endpoint fails when a variant has no replica and cannot get one."""
        procs = self.fleet.of(row.name)
        for v in row.spec.variants:
            mine = [p for p in procs if p.key == v.key and p.index < v.replicas]
            if any(p.healthy for p in mine):
                continue
            stuck = fetch_problems.get(v.name)
            if stuck is None and mine and all(p.failed_starts >= MAX_FAILED_STARTS for p in mine):
                stuck = mine[0].failure
            if stuck:
                # Nothing serves any more: an update (with the variants to serve) revives it.
                endpoints.set_spec(row, row.spec.model_copy(update={"variants": []}))
                reason = f"Variant {v.name} ({v.model}) has no healthy replica. {stuck}"
                endpoints.transition(session, row, EndpointStatus.FAILED, reason)
                return

    def _routes(self, row: EndpointRow) -> tuple[VariantRoute, ...]:
        procs = self.fleet.of(row.name)
        return tuple(
            VariantRoute(
                v.name,
                v.weight,
                tuple(
                    ("127.0.0.1", p.port)
                    for p in sorted(procs, key=lambda p: p.index)
                    if p.key == v.key
                    and p.index < v.replicas
                    and p.healthy
                    and p.retire_at is None
                    and p.port is not None
                ),
                row.spec.batching.max_delay_ms / 1000,
            )
            for v in row.spec.variants
        )

    # -- figures and captured data ------------------------------------------------------
    def _scrape(self, table: dict[str, tuple[VariantRoute, ...]]) -> None:
        procs = [p for p in self.fleet.all() if p.healthy and p.retire_at is None]
        answers = dict(zip(procs, self._pool.map(self._stats, procs), strict=True))
        now = time.time()
        for endpoint, routes in table.items():
            for route in routes:
                ports = {port for _, port in route.targets}
                snaps = {
                    f"{p.key}/{p.index}": snap
                    for p, snap in answers.items()
                    if p.endpoint == endpoint and p.port in ports and snap is not None
                }
                self.book.observe(endpoint, route.name, snaps, now)

    def save_history(self) -> None:
        """The book's new points into the saved minutes; minutes past retention go."""
        taken = self.book.take_unsaved()
        keep_s = self.state.settings.endpoint_history_days * 86400
        try:
            with transaction(self.state.sessions) as session:
                ids = {row.name: row.id for row in endpoints.list_all(session)}
                endpoint_history.save(session, taken, ids)
                endpoint_minutes.prune(session, int(time.time() - keep_s))
                endpoints.prune_scaling_events(
                    session, datetime.now(UTC) - timedelta(seconds=keep_s)
                )
        except SQLAlchemyError:
            log.exception("Could not save endpoint traffic; keeping it for the next try")
            self.book.give_back(taken)

    def _stats(self, proc: ReplicaProcess) -> dict[str, Any] | None:
        try:
            response = self._http.get(f"{proc.url}/stats")
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def _upload_captures(self) -> None:
        if self._capture_job is not None and not self._capture_job.done():
            return
        procs = [p for p in self.fleet.all() if (p.root / replicas.CAPTURE_DIR).is_dir()]

        def upload() -> None:
            for proc in procs:
                self._upload_capture_dir(proc)

        if procs:
            self._capture_job = self._pool.submit(upload)

    def _upload_capture_dir(self, proc: ReplicaProcess) -> None:
        """Move the replica's finished capture files to endpoints/<name>/capture/<variant>/."""
        for path in sorted((proc.root / replicas.CAPTURE_DIR).glob("*.jsonl")):
            target = f"endpoints/{proc.endpoint}/capture/{proc.variant or proc.key}/{path.name}"
            try:
                self.state.artifacts.put_file(target, path)
                path.unlink()
            except FileNotFoundError:
                continue  # moved by the other uploader (periodic, or at the replica's end)
            except Exception:
                log.warning(
                    "could not upload captured requests %s; will retry", path, exc_info=True
                )
                return


def _cold_wait(row: EndpointRow) -> float | None:
    """How long a request may wait for a replica of this endpoint to start: set when it is
    routed and has a variant that scales to zero."""
    waits = [
        v.autoscaling.cold_start_timeout_s
        for v in row.spec.variants
        if v.autoscaling is not None and v.autoscaling.min_replicas == 0
    ]
    return max(waits) if waits and row.status in ROUTED else None


def _describe(variants: list[ResolvedVariant]) -> str:
    total = sum(v.weight for v in variants) or 1.0
    return ", ".join(
        f"{v.model} ({v.weight / total:.0%}, {v.replicas} replica(s))" for v in variants
    )

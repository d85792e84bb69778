"""Endpoint traffic history: the metrics book's points saved as minutes, and read back.

The book keeps a second a point for ten minutes, in memory. Every minute (and when the
server stops) the keeper takes the points the database does not have, sums them into one
row per variant per minute, and adds them to what is saved: a minute is saved in parts,
so a restart loses nothing but the seconds nobody scraped. Reads add up minutes into
steps (histograms add, so a step's percentiles are true ones, not averages of minutes)
and include the points still in memory.
"""

import math
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy.orm import Session

from naiad.schemas.endpoints import EndpointHistory, MetricsPoint
from naiad.server.traffic.book import Point, Unsaved, add_counts, point_figures
from naiad.store import endpoint_minutes
from naiad.store.tables import EndpointMinuteRow, EndpointRow

MINUTE = 60
MAX_POINTS = 720  # a default step keeps a read to this many points per variant


def bucket(at: float, step: int) -> int:
    return int(at // step) * step


def merge(a: Point, b: Point) -> Point:
    """Two stretches of one variant's traffic as one (counts add, the queue's peak stays)."""
    return Point(
        at=min(a.at, b.at),
        dt=a.dt + b.dt,
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        client_errors=a.client_errors + b.client_errors,
        latency=add_counts(a.latency, b.latency),
        batches=add_counts(a.batches, b.batches),
        queue_depth=max(a.queue_depth, b.queue_depth),
        in_flight=max(a.in_flight, b.in_flight),
        rows=a.rows + b.rows,
        batch_count=a.batch_count + b.batch_count,
    )


def roll_up(points: Iterable[Point], step: int) -> dict[int, Point]:
    """Points summed per ``step`` seconds, keyed (and stamped) by the step's start."""
    out: dict[int, Point] = {}
    for p in points:
        start = bucket(p.at, step)
        p = replace(p, at=float(start))
        out[start] = merge(out[start], p) if start in out else p
    return out


def _from_row(row: EndpointMinuteRow) -> Point:
    return Point(
        at=float(row.minute),
        dt=row.seconds,
        requests=row.requests,
        errors=row.errors,
        client_errors=row.client_errors,
        latency=list(row.latency),
        batches=list(row.batches),
        queue_depth=row.queue_depth,
        in_flight=0,
        rows=row.rows,
        batch_count=row.batch_count,
    )


def save(session: Session, taken: dict[tuple[str, str], Unsaved], ids: dict[str, str]) -> None:
    """Add the taken points to the saved minutes of the endpoints in ``ids`` (name -> id);
    the points of an endpoint no longer there are dropped with it."""
    for (endpoint, variant), unsaved in taken.items():
        endpoint_id = ids.get(endpoint)
        if endpoint_id is None:
            continue
        minutes = roll_up(unsaved.points, MINUTE)
        saved = endpoint_minutes.existing(session, endpoint_id, variant, minutes)
        for minute, point in minutes.items():
            row = saved.get(minute)
            if row is not None:
                point = merge(_from_row(row), point)
            else:
                row = EndpointMinuteRow(endpoint_id=endpoint_id, variant=variant, minute=minute)
                session.add(row)
            row.seconds = point.dt
            row.requests = point.requests
            row.errors = point.errors
            row.client_errors = point.client_errors
            row.latency_le = unsaved.latency_le
            row.latency = point.latency
            row.batch_le = unsaved.batch_le
            row.batches = point.batches
            row.rows = point.rows
            row.batch_count = point.batch_count
            row.queue_depth = point.queue_depth


def default_step(since_s: float) -> int:
    """The smallest whole number of minutes that keeps ``since_s`` to MAX_POINTS points."""
    return MINUTE * max(1, math.ceil(since_s / MINUTE / MAX_POINTS))


def read(
    session: Session,
    row: EndpointRow,
    unsaved: dict[str, Unsaved],
    since_s: float,
    step: int,
    now: float,
) -> EndpointHistory:
    """The saved minutes from ``now - since_s`` on, with the unsaved points, per step."""
    start = bucket(now - since_s, MINUTE)
    points: dict[str, list[Point]] = {}
    bounds: dict[str, list[float]] = {}
    for saved in endpoint_minutes.since(session, row.id, start):
        points.setdefault(saved.variant, []).append(_from_row(saved))
        bounds[saved.variant] = saved.latency_le
    for variant, recent in unsaved.items():
        points.setdefault(variant, []).extend(p for p in recent.points if p.at >= start)
        bounds[variant] = recent.latency_le or bounds.get(variant, [])
    variants: dict[str, list[MetricsPoint]] = {}
    for variant, series in sorted(points.items()):
        steps = roll_up(series, step)
        variants[variant] = [point_figures(steps[k], bounds[variant]) for k in sorted(steps)]
    return EndpointHistory(endpoint=row.name, since_s=since_s, step_s=step, variants=variants)

"""What is free to start jobs on, as the scheduler sees it during one tick.

A job is a gang: ``nodes`` hosts, each running ``processes_per_node`` processes with
``gpus`` GPUs. It starts whole or not at all, so a rendezvous never waits for a host
that cannot come. ``take`` both answers whether a gang fits now and holds its room for
the rest of the tick, so two jobs are never placed on the same free cores.
"""

from collections.abc import Sequence
from dataclasses import dataclass


def _plural(n: float, word: str) -> str:
    count = int(n) if float(n).is_integer() else n
    return f"{count} {word}{'' if n == 1 else 's'}"


@dataclass
class Slots:
    """One machine's process slots (the local executor emulates every host on it)."""

    free: int
    total: int

    def take(self, nodes: int, processes_per_node: int, gpus: int) -> str | None:
        need = nodes * processes_per_node
        if need <= self.free:
            self.free -= need
            return None
        return f"needs {_plural(need, 'process slot')}; {self.free} of {self.total} free"


@dataclass
class NodePool:
    """The free resources of each node of a cluster (``{"CPU": 8.0, "GPU": 2.0}``).

    A gang of several nodes needs that many distinct nodes (one host each, as Ray's
    ``STRICT_SPREAD``); a one-node job packs onto one. Among the nodes that fit, the
    fullest are taken first (best fit), which leaves whole nodes free for large gangs.
    """

    free: list[dict[str, float]]

    def fitting(self, processes_per_node: int, gpus: int) -> list[int]:
        """The nodes that could hold one host of such a gang now."""
        return [
            i
            for i, node in enumerate(self.free)
            if node.get("CPU", 0.0) >= processes_per_node and node.get("GPU", 0.0) >= gpus
        ]

    def take(self, nodes: int, processes_per_node: int, gpus: int) -> str | None:
        fits = self.fitting(processes_per_node, gpus)
        if len(fits) >= nodes:
            fits.sort(key=lambda i: (self.free[i].get("GPU", 0.0), self.free[i].get("CPU", 0.0)))
            for i in fits[:nodes]:
                self.free[i]["CPU"] = self.free[i].get("CPU", 0.0) - processes_per_node
                if gpus:
                    self.free[i]["GPU"] = self.free[i].get("GPU", 0.0) - gpus
            return None
        host = _plural(processes_per_node, "CPU") + (f" and {_plural(gpus, 'GPU')}" if gpus else "")
        return f"needs {_plural(nodes, 'node')} with {host} free; {len(fits)} such free"


def node_pool(nodes: Sequence[dict[str, float]]) -> NodePool:
    """A pool over copies of ``nodes`` (the caller's figures are never changed)."""
    return NodePool([dict(node) for node in nodes])

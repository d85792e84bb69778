"""A Ray cluster of several nodes on this machine, for tests and benchmarks.

Ray's own ``cluster_utils.Cluster`` starts a head and worker raylets on 127.0.0.1;
each worker node gets a few CPUs, which are only labels here (the nodes share this
machine's cores), so a 2-node gang really is placed on two nodes. ``remove`` kills a
node's raylet, as a lost machine would.

Everything listens on 127.0.0.1 only: Ray swaps a loopback address for the machine's
own unless told this is a one-machine cluster (``LOOPBACK_ENV``), which every process
that joins it needs in its environment too (a server under test: ``LOOPBACK_ENV``).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ADDRESS = "127.0.0.1"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class LocalCluster:
    def __init__(self, workers: int = 3, cpus: int = 1, gpus: int = 0) -> None:
        os.environ.update(LOOPBACK_ENV)  # before Ray reads it, for every process it starts
        from ray.cluster_utils import Cluster

        self.cpus, self.gpus = cpus, gpus
        # The head takes no job (the coordinators live there, needing no CPU).
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "node_ip_address": ADDRESS,
                "include_dashboard": False,
            },
        )
        self.workers: list[Any] = [self.add() for _ in range(workers)]

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self) -> Any:
        node = self.cluster.add_node(
            num_cpus=self.cpus, num_gpus=self.gpus, node_ip_address=ADDRESS
        )
        return node

    def remove(self, node: Any) -> None:
        """Kill the node's raylet and its workers at once (no graceful drain)."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def shutdown(self) -> None:
        self.cluster.shutdown()


@contextmanager
def local_cluster(workers: int = 3, cpus: int = 1, gpus: int = 0) -> Iterator[LocalCluster]:
    cluster = LocalCluster(workers, cpus, gpus)
    try:
        yield cluster
    finally:
        cluster.shutdown()

"""TF_CONFIG, as SageMaker's TensorFlow container sets it for MultiWorkerMirroredStrategy:
every worker's address and this process's index among them. The supervisor sets it for
one process per host; under torchrun each rank sets its own (``integrations.tensorflow_job``)
from the addresses the supervisor passes in ``NAIAD_TF_WORKERS``."""

import json

WORKERS_ENV = "NAIAD_TF_WORKERS"  # every process's host:port, by rank, comma-separated


def tf_config(workers: list[str], rank: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}})

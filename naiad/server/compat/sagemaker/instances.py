"""SageMaker instance types as Naiad reads them: GPUs per instance, which decide how many
processes a distributed script gets per host. Types not listed run as one process with no
GPU; a host is given no more GPUs than this machine has (a CPU machine runs GPU types on
CPU, so the same script can be tried locally first)."""

import glob
import re
from dataclasses import dataclass

# GPUs per instance of the families that have them (family.size -> GPUs).
GPUS = {
    "ml.p2.xlarge": 1, "ml.p2.8xlarge": 8, "ml.p2.16xlarge": 16,
    "ml.p3.2xlarge": 1, "ml.p3.8xlarge": 4, "ml.p3.16xlarge": 8, "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8, "ml.p4de.24xlarge": 8, "ml.p5.48xlarge": 8, "ml.p5e.48xlarge": 8,
    "ml.g4dn.xlarge": 1, "ml.g4dn.2xlarge": 1, "ml.g4dn.4xlarge": 1, "ml.g4dn.8xlarge": 1,
    "ml.g4dn.16xlarge": 1, "ml.g4dn.12xlarge": 4,
    "ml.g5.xlarge": 1, "ml.g5.2xlarge": 1, "ml.g5.4xlarge": 1, "ml.g5.8xlarge": 1,
    "ml.g5.16xlarge": 1, "ml.g5.12xlarge": 4, "ml.g5.24xlarge": 4, "ml.g5.48xlarge": 8,
    "ml.g6.xlarge": 1, "ml.g6.2xlarge": 1, "ml.g6.12xlarge": 4, "ml.g6.48xlarge": 8,
}  # fmt: skip
LOCAL = ("local", "local_gpu")  # the SageMaker SDK's local mode names


@dataclass(frozen=True)
class Placement:
    gpus: int  # given to each host
    processes: int  # per host, when the script asks for distribution


def visible_gpus() -> int:
    """NVIDIA GPUs this machine exposes, counted without importing torch."""
    return len([p for p in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", p)])


def placement(instance_type: str, distributed: bool, available: int | None = None) -> Placement:
    gpus = GPUS.get(instance_type, 0)
    if instance_type == "local_gpu":
        gpus = 1
    gpus = min(gpus, visible_gpus() if available is None else available)
    return Placement(gpus=gpus, processes=max(1, gpus) if distributed else 1)

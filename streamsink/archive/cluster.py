"""The Ray side of an archive: importing Ray, joining or starting a cluster, and sizing replicas to it.

Everything here takes the `ray` module as an argument, so the scheduler and
`plan` can be tested against a fake cluster.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from streamsink.errors import StreamsinkError

logger = logging.getLogger(__name__)


class RayNotInstalledError(StreamsinkError, ImportError):
    """Ray, needed only for archives, is not installed."""


def import_ray() -> Any:
    try:
        import ray
        import ray.exceptions  # noqa: F401  (used as ray.exceptions.*)
    except ImportError:
        raise RayNotInstalledError("footage archives run on Ray, which is not installed: "
                                   "pip install 'streamsink[ray]'") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join `address`, or the instance already running here, or start a local one; True if started here."""
    if ray.is_initialized():
        if address is not None:
            logger.warning("Ray is already initialised in this process; using it, not %s", address)
        return False
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING)
        return False
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    return True


def plan(ray: Any, device: str, workers: int | None, files: int) -> tuple[int, dict[str, Any], float]:
    """Replica count, actor resource options and CPUs per replica, from the cluster's resources."""
    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    node_cpus = max((float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")),
                    default=cpus)
    use_gpu = gpus >= 1 and device not in ("cpu", "mps")
    if device.startswith("cuda") and gpus < 1:
        raise ValueError(f"device {device!r} asked for, but the Ray cluster has no GPU; use cpu or auto")
    count = workers or max(1, int(gpus if use_gpu else cpus))
    count = max(1, min(count, files))
    if use_gpu:
        if device.startswith("cuda:"):
            logger.warning("device %s: Ray assigns each replica its GPU; the index is ignored", device)
        per_gpu = 1.0 if count <= gpus else floor4(gpus / count)
        per_cpu = 1.0 if cpus >= count else floor4(cpus / count)
        return count, {"num_gpus": per_gpu, "num_cpus": per_cpu, "_device": "cuda"}, per_cpu
    if cpus <= 0:
        raise StreamsinkError("the Ray cluster has no CPU to run detector replicas on")
    # Whole cores where they go round (fractions can strand a replica between nodes), capped at one node's.
    per_cpu = float(min(int(cpus) // count, int(node_cpus))) if count <= cpus else floor4(cpus / count)
    per_cpu = max(per_cpu, 0.0001)
    return count, {"num_cpus": per_cpu, "_device": "cpu" if device == "auto" else device}, per_cpu


def floor4(value: float) -> float:
    """Ray accepts resource fractions to four decimals."""
    return max(math.floor(value * 10_000) / 10_000, 0.0001)


def kill(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:
        pass

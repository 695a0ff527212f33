"""Multi-process start-up: `jax.distributed.initialize()` when the run spans several processes (hosts).

It must run before anything touches a JAX device. `auto` calls it when the environment describes a
multi-process job: an explicit coordinator (`JAX_COORDINATOR_ADDRESS`, with `JAX_NUM_PROCESSES` and
`JAX_PROCESS_ID`), several TPU worker hosts (`TPU_WORKER_HOSTNAMES` / `TPU_PROCESS_ADDRESSES`, or a multislice
`MEGASCALE_COORDINATOR_ADDRESS`), or SLURM / Open MPI with more than one task; JAX's cluster detection then finds
the addresses and ranks. Use `on` where the environment says nothing (e.g. a GCE TPU VM pod slice).
"""

from __future__ import annotations

import enum
import os
from typing import Mapping

import jax


class Distributed(str, enum.Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


def multi_process_environment(env: Mapping[str, str]) -> bool:
    """Whether `env` describes a job of several processes."""
    if env.get("JAX_COORDINATOR_ADDRESS") or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return True
    hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
    if len([h for h in hosts.split(",") if h]) > 1:
        return True
    return any(int(env.get(name, "1") or 1) > 1 for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))


def initialize(mode: Distributed, env: Mapping[str, str] = os.environ) -> bool:
    """Initializes JAX's distributed runtime when `mode` (or, for `auto`, `env`) asks for it; returns whether."""
    if Distributed(mode) is Distributed.OFF or (mode == Distributed.AUTO and not multi_process_environment(env)):
        return False
    jax.distributed.initialize()
    return True

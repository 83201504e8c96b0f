"""Distributed runtime: the cell population sharded over Ray actors, one O&M period at a time.

- ``shard.CellShard``: a contiguous range of cells (simulator, KPI history, allocation, scheme, estimator); a plain
  class, run as a restartable Ray actor or in-process.
- ``population.Population``: the driver-side orchestrator (partition by geography, halo exchange, step and
  allocate in parallel, estimator shipped through the object store once per version, routing of reads and KPIs).
- ``checkpoint``: per-shard checkpoints on a local folder or any ``pyarrow.fs`` URI, written atomically.
- ``population_actor``: the population as the named actor ``"slicing-population"`` (namespace ``"slicing"``)
  with a periodic loop, for the HTTP service.
- ``transfer_actor``: the TransferService actor ``"slicing-transfer"`` (registry, ranking, background transfers).
- ``ray_util``: the one place that starts Ray, finds named actors and unwraps Ray task errors.

The estimator travels through the object store as a plain payload (``estimator_payload`` in
``slicing/models/qos_estimator.py``). The sharded benchmark is ``slicing/bench/population.py``; the multi-node
test run is ``tests/runtime/multinode.py``.

Names are imported lazily, so ``import slicing.runtime.shard`` does not import Ray. This layer may import rl
and everything below it; nothing below imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CellShard": "shard", "UnknownCell": "shard", "Population": "population", "partition": "population",
    "CheckpointStore": "checkpoint", "CheckpointMismatch": "checkpoint", "PopulationActor": "population_actor",
    "PopulationService": "population_actor", "get_population_actor": "population_actor",
    "start_population_actor": "population_actor", "stop_population_actor": "population_actor",
    "ACTOR_NAME": "population_actor", "NAMESPACE": "ray_util", "ensure_ray": "ray_util",
}
__all__ = list(_EXPORTS)  # lazy names (see __getattr__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

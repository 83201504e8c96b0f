"""Distributed runtime: the cell population sharded over Ray actors, one O&M period at a time.

- ``shard.CellShard``: a contiguous range of cells (simulator, KPI history, allocation, scheme, estimator); a plain
  class, run as a restartable Ray actor or in-process.
- ``population.Population``: the driver-side orchestrator (partition by geography, halo exchange, step and
  allocate in parallel, estimator shipped through the object store once per version, routing of reads and KPIs).
- ``checkpoint``: per-shard checkpoints on a local folder or any ``pyarrow.fs`` URI, written atomically.
- ``service``: the population as the named actor ``"slicing-population"`` (namespace ``"slicing"``) with a
  periodic loop, for the HTTP service.
- ``bench.bench_population``: the sharded scale benchmark (``slicing bench --shards K``).
- ``weights``: the estimator as a plain payload for the object store; ``records``: KPI record validation.
- ``multinode``: a head + 2 worker ``ray.cluster_utils.Cluster`` run that loses a node mid-run (a test).

Names are imported lazily, so ``import slicing.runtime.shard`` does not import Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CellShard": "shard", "UnknownCell": "shard", "Population": "population", "partition": "population",
    "CheckpointStore": "checkpoint", "CheckpointMismatch": "checkpoint", "PopulationActor": "service",
    "PopulationService": "service", "get_population_actor": "service", "start_population_actor": "service",
    "stop_population_actor": "service",
    "ACTOR_NAME": "service", "NAMESPACE": "service", "bench_population": "bench",
    "estimator_payload": "weights", "estimator_from_payload": "weights",
}
__all__ = list(_EXPORTS)  # lazy names (see __getattr__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

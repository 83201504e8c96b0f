"""The chaos run (issue 14, item 8): a population and the HTTP service on a 3-node cluster (127.0.0.1) under a steady
request load while seeded faults hit a shard, a worker node, the population actor and a Serve replica.

The bounded run is ``slicing bench chaos --faults 4`` (each kind once) in a subprocess: a process can connect to one
Ray cluster only, and this session may already hold a local Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from slicing.bench.chaos import KINDS, fault_plan, unallocated

ROOT = Path(__file__).resolve().parents[2]


def test_the_fault_plan_is_seeded_and_tries_every_kind_in_each_block_of_four():
    assert fault_plan(8, 3) == fault_plan(8, 3)
    assert fault_plan(8, 3) != fault_plan(8, 4) or fault_plan(8, 5) != fault_plan(8, 3)
    plan = fault_plan(10, 0)
    assert len(plan) == 10 and sorted(plan[:4]) == sorted(KINDS) and sorted(plan[4:8]) == sorted(KINDS)
    assert set(plan[8:]) <= set(KINDS)
    with pytest.raises(ValueError, match="faults"):
        fault_plan(0, 0)


def test_unallocated_counts_cells_without_a_finite_positive_budget():
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    shares = np.array([[0.5, 0.5, 0.0], [0.0, 0.3, 0.0], [0.2, np.nan, 0.1], [0.0, 0.0, 0.0]])
    # row 1: its only active slice holds 0; row 2: a NaN; row 3: no active slice, nothing to allocate
    assert unallocated(SimpleNamespace(shares=shares, mask=mask)) == 2
    assert unallocated(SimpleNamespace(shares=np.full((2, 2), 0.5), mask=np.ones((2, 2), bool))) == 0


def test_a_service_under_load_survives_each_kind_of_fault():
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    cli = str(Path(sys.executable).parent / "slicing")
    proc = subprocess.run([cli, "bench", "chaos", "--faults", "4", "--seed", "1", "--gap-s", "1", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(res))
    assert res["front"] == "nginx"
    assert res["faults"] == 4 and Counter(f["kind"] for f in res["fault_log"]) == Counter(KINDS)
    assert res["cells_unallocated"] == 0
    assert res["kpis_acked"] >= 3 * 3 and res["kpis_acked_lost"] == 0  # 3 shards: a record in each before a fault
    assert res["requests"] >= 100 and res["failed_requests"] == 0, res["failed_examples"]
    assert set(res["statuses"]) <= {"200", "503"}
    assert res["max_recovery_s"] <= 30.0
    assert res["periods"] >= 4  # the population went on through the faults

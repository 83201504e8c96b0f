"""`slicing bench serve` (slicing/bench/serve.py): the request cells it sends, and its bounded paced run against the
whole service started by ``slicing.serve.runner.LocalService`` on 127.0.0.1, as the command runs it."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.bench.serve import random_cells
from slicing.config import HISTORY, default_catalogue
from slicing.serve.models import AllocateRequest


@pytest.fixture(scope="module")
def svc(ray_session):
    from slicing.serve.runner import LocalService, free_port

    # 30 cells on one shard, a 2-epoch estimator; at most 2 requests in flight, as the HTTP tests deploy it
    with LocalService(port=free_port(), cells=30, shards=1, settings={"max_inflight_requests": 2},
                      log=lambda m: None, train_epochs=2) as service:
        yield {"base": service.base_url, "cells": service.scenario.cells, "ready": service.ready_info}


def test_random_cells_are_valid_requests_and_seeded():
    a = random_cells(40, np.random.default_rng(3), (2, 6), prefix="x", last_period=True)
    b = random_cells(40, np.random.default_rng(3), (2, 6), prefix="x", last_period=True)
    assert a == b and [c["cell_id"] for c in a[:2]] == ["x0", "x1"]
    assert {len(c["slices"]) for c in a} <= set(range(2, 7)) and len({len(c["slices"]) for c in a}) > 1
    known = {s.snssai: s for s in default_catalogue()}
    for c in a:
        names = [s["snssai"] for s in c["slices"]]
        assert len(set(names)) == len(names)  # a slice at most once per cell
        for s in c["slices"]:
            assert len(s["users_history"]) == len(s["cqi_history"]) == HISTORY
            assert min(s["users_history"]) >= 0 and 3 <= min(s["cqi_history"]) <= max(s["cqi_history"]) <= 14
            assert set(s["last_period"]) == {"throughput_mbps", "prb_util", "nbr_prb_util"}
            if s["snssai"] in known:
                assert s["throughput_req_mbps"] == known[s["snssai"]].throughput_req_mbps
    AllocateRequest.model_validate({"scheme": "rl", "cells": a})  # what the HTTP model accepts
    assert "last_period" not in random_cells(1, np.random.default_rng(0))[0]["slices"][0]


def test_bench_serve_measures_a_bounded_paced_run(svc) -> None:
    """`slicing bench serve`'s loop against the running service: bounded count, paced, every GET answered."""
    from slicing.bench.serve import bench_serve

    logs: list[str] = []
    out = bench_serve(svc["base"], svc["cells"], allocate_cells=10, rps=20.0, requests_total=20, log=logs.append)
    assert set(out) == {"allocate_1000_cells_s", "get_p50_ms", "get_p99_ms", "rps"}
    assert 0 < out["allocate_1000_cells_s"] < 60 and 0 < out["get_p50_ms"] <= out["get_p99_ms"] < 10_000
    assert 5 < out["rps"] <= 25  # paced at 20/s, not as fast as possible
    # the fixture caps in-flight requests at 2 (to test overload), so a loaded machine may shed a few with 503
    shed = [int(line.split(" non-200")[0].rsplit(" ", 1)[1]) for line in logs if " non-200" in line]
    assert shed and shed[0] <= 5

"""The HTTP service for real: Ray Serve on 127.0.0.1 (a free port), a 48-cell population on 2 shards, a small
estimator. Every client call goes to 127.0.0.1. Serve is shut down at the end of the module.

The deployment runs with max_inflight_requests = 2 (the overload test needs a low limit; the other tests send
one request at a time) and max_cells_per_request = 300.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from slicing.bench.serve import random_cells
from slicing.config import HISTORY, build_scenario
from slicing.serve.runner import deploy_app, free_port, wait_ready
from slicing.snssai import as_3gpp
from tests.optim.slice_fixtures import tiny_slice_model_file

TOKEN = "test-token-123"
MAX_CELLS = 300
SCHEMES = ["idla", "traffic", "equal", "oracle"]


@pytest.fixture(scope="module")
def svc(ray_session, tmp_path_factory):
    import ray
    from ray import serve

    from slicing.optim.rollout import bootstrap_estimator
    from slicing.runtime import start_population_actor

    model = bootstrap_estimator(0, lambda msg: None, epochs=8)
    sc = build_scenario({"name": "serve-test", "seed": 2, "topology": {"sites": 16},
                         "initial_slices": [1, 2, 4], "schedule": [{"at_fraction": 0.0, "add": [3],
                                                                    "cells_fraction": 0.5}]})
    from slicing.rl.train import TrainSettings, train

    # an untrained (0-iteration) PPO checkpoint: enough to serve scheme rl through the real loading path
    rl_ckpt = train(sc, TrainSettings(algo="ppo", iterations=0, region=6, episode_len=4, hidden=(16,)),
                    tmp_path_factory.mktemp("rl"))["checkpoint"]
    from slicing.models.slice_model import load_slice_model, slice_model_payload

    slice_model = tiny_slice_model_file(tmp_path_factory.mktemp("slice") / "slice.pt")
    e2e = {"config": {}, "model": slice_model_payload(load_slice_model(slice_model))}
    pop = start_population_actor(sc, 2, "idla", model, e2e=e2e)
    try:
        for _ in range(HISTORY):
            ray.get(pop.run_period.remote())
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy_app({"max_inflight_requests": 2, "max_cells_per_request": MAX_CELLS},
                   env={"SLICING_API_TOKEN": TOKEN, "SLICING_RL_CHECKPOINT": rl_ckpt,
                        "SLICING_SLICE_MODEL_PATH": str(slice_model)})
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, timeout_s=120)
        yield {"base": base, "pop": pop, "cells": sc.cells, "version": ray.get(pop.model_version.remote()),
               "rl_checkpoint": rl_ckpt, "scenario": sc, "slice_model": slice_model}
    finally:
        serve.shutdown()
        try:
            ray.get(pop.shutdown.remote(), timeout=60)
        finally:
            ray.kill(pop)


def post(svc, path: str, body=None, raw: str | None = None, headers: dict | None = None) -> requests.Response:
    h = {"content-type": "application/json", **(headers or {})}
    return requests.post(svc["base"] + path, data=raw if raw is not None else json.dumps(body), headers=h,
                         timeout=60)


def get(svc, path: str) -> requests.Response:
    return requests.get(svc["base"] + path, timeout=30)


def valid_body(scheme: str = "idla") -> dict:
    return {"scheme": scheme, "cells": random_cells(3, np.random.default_rng(11), (2, 3))}


# -------------------------------------------------------------------------------------------------- probes


def test_health_and_readiness(svc) -> None:
    assert get(svc, "/healthz").json() == {"status": "ok"}
    r = get(svc, "/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] and body["estimator"] and body["population"]
    assert body["estimator_source"] == "population" and body["model_version"] == svc["version"]


def test_openapi_lists_the_v1_contract(svc) -> None:
    spec = get(svc, "/openapi.json").json()
    assert {"/healthz", "/readyz", "/v1/allocate", "/v1/cells", "/v1/cells/{cell_id}/allocation",
            "/v1/kpis", "/v1/e2e/allocate"} <= set(spec["paths"])
    assert {"413", "422", "503"} <= set(spec["paths"]["/v1/e2e/allocate"]["post"]["responses"])
    assert "413" in spec["paths"]["/v1/allocate"]["post"]["responses"]
    assert "401" in spec["paths"]["/v1/kpis"]["post"]["responses"]
    assert {"404", "410", "422", "503"} <= set(spec["paths"]["/v1/allocations"]["get"]["responses"])
    export = spec["paths"]["/v1/allocations/export"]["get"]["responses"]
    assert {"404", "406", "410"} <= set(export)
    assert {"application/x-ndjson", "application/vnd.apache.arrow.stream"} <= set(export["200"]["content"])


# ----------------------------------------------------------------------------------------- POST /v1/allocate


def _ratios_ok(slices: list[dict]) -> None:
    shares = np.array([s["share"] for s in slices])
    assert (shares >= 0).all() and shares.sum() <= 1.0
    mins = [s["rrm_policy"]["min_ratio"] for s in slices]
    assert sum(mins) <= 100
    for s in slices:
        p = s["rrm_policy"]
        assert all(isinstance(p[k], int) for k in ("max_ratio", "min_ratio", "dedicated_ratio"))
        assert 0 <= p["dedicated_ratio"] <= p["min_ratio"] <= p["max_ratio"] <= 100
        assert p["min_ratio"] <= 100 * s["share"] + 1e-6 <= p["max_ratio"] + 2e-6


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allocate_feasible_with_rrm_invariants(svc, scheme: str) -> None:
    rng = np.random.default_rng(SCHEMES.index(scheme))
    cells = random_cells(250, rng, (1, 6))
    r = post(svc, "/v1/allocate", {"scheme": scheme, "cells": cells})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == svc["version"]
    assert [a["cell_id"] for a in out["allocations"]] == [c["cell_id"] for c in cells]
    for a, c in zip(out["allocations"], cells, strict=True):
        assert [s["snssai"] for s in a["slices"]] == [s["snssai"] for s in c["slices"]]
        assert math.isfinite(a["predicted_utility"])
        _ratios_ok(a["slices"])


def test_allocate_takes_every_snssai_form_and_answers_canonical(svc) -> None:
    cell = random_cells(1, np.random.default_rng(11), (3, 3))[0]
    forms = [{"sst": 1, "sd": "00000A"}, "1-000002", "2"]
    for sl, form in zip(cell["slices"], forms, strict=True):
        sl["snssai"] = form
    r = post(svc, "/v1/allocate", {"scheme": "idla", "cells": [cell]})
    assert r.status_code == 200, r.text
    assert [s["snssai"] for s in r.json()["allocations"][0]["slices"]] == ["01-00000a", "01-000002", "02"]
    cell["slices"][2]["snssai"] = {"sst": 1, "sd": "000002"}  # the same slice as "1-000002"
    r = post(svc, "/v1/allocate", {"scheme": "idla", "cells": [cell]})
    assert r.status_code == 422 and "duplicate S-NSSAI" in r.json()["detail"][0]["msg"]
    cell["slices"][2]["snssai"] = {"sst": 1, "sd": "000002", "plmn": "00101"}
    r = post(svc, "/v1/allocate", {"scheme": "idla", "cells": [cell]})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.cells.0.slices.2.snssai"


# ------------------------------------------------------------------------------------------------ bad input


def _mutate(case: str) -> tuple[dict | str, str]:
    body = {"scheme": "idla", "cells": random_cells(2, np.random.default_rng(4), (2, 2))}
    c0s1 = body["cells"][0]["slices"][1]
    if case == "nan":
        c0s1["users_history"][2] = "__NAN__"
        return json.dumps(body).replace('"__NAN__"', "NaN"), "body.cells.0.slices.1.users_history.2"
    if case == "infinity":
        body["cells"][1]["slices"][0]["throughput_req_mbps"] = "__INF__"
        return json.dumps(body).replace('"__INF__"', "Infinity"), "body.cells.1.slices.0.throughput_req_mbps"
    if case == "history_length":
        c0s1["users_history"] = c0s1["users_history"][:-1]
        return body, "body.cells.0.slices.1.users_history"
    if case == "cqi_length":
        body["cells"][1]["slices"][1]["cqi_history"] += [7.0]
        return body, "body.cells.1.slices.1.cqi_history"
    if case == "negative_throughput":
        c0s1["throughput_req_mbps"] = -1.0
        return body, "body.cells.0.slices.1.throughput_req_mbps"
    if case == "negative_delay":
        body["cells"][1]["slices"][0]["delay_req_ms"] = -5
        return body, "body.cells.1.slices.0.delay_req_ms"
    if case == "empty_slices":
        body["cells"][1]["slices"] = []
        return body, "body.cells.1.slices"
    if case == "unknown_scheme":
        body["scheme"] = "magic"
        return body, "body.scheme"
    if case == "duplicate_snssai":
        c0s1["snssai"] = body["cells"][0]["slices"][0]["snssai"].upper()
        return body, "body.cells.0.slices"
    if case == "bad_snssai":
        c0s1["snssai"] = "1-2"
        return body, "body.cells.0.slices.1.snssai"
    if case == "unknown_field":
        c0s1["weight"] = 2
        return body, "body.cells.0.slices.1.weight"
    if case == "no_cells":
        body["cells"] = []
        return body, "body.cells"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["nan", "infinity", "history_length", "cqi_length", "negative_throughput",
                                  "negative_delay", "empty_slices", "unknown_scheme", "duplicate_snssai",
                                  "bad_snssai", "unknown_field", "no_cells"])
def test_invalid_allocate_is_422_naming_the_json_path(svc, case: str) -> None:
    body, path = _mutate(case)
    r = post(svc, "/v1/allocate", raw=body) if isinstance(body, str) else post(svc, "/v1/allocate", body)
    assert r.status_code == 422, r.text
    paths = [d["path"] for d in r.json()["detail"]]
    assert path in paths, paths
    if case == "duplicate_snssai":
        assert "duplicate S-NSSAI" in r.json()["detail"][0]["msg"]


def test_allocate_rl_scheme_with_checkpoint_version(svc) -> None:
    from slicing.rl.inference import RlPolicy

    body = {"scheme": "rl", "cells": random_cells(20, np.random.default_rng(8), (1, 4), last_period=True)}
    r = post(svc, "/v1/allocate", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == RlPolicy.from_checkpoint(svc["rl_checkpoint"]).version != svc["version"]
    for cell, a in zip(body["cells"], out["allocations"], strict=True):
        assert [s["snssai"] for s in a["slices"]] == [s["snssai"] for s in cell["slices"]]
        assert sum(s["share"] for s in a["slices"]) <= 1 + 1e-9
    assert get(svc, "/readyz").json()["rl_version"] == out["model_version"]
    del body["cells"][2]["slices"][0]["last_period"]
    r = post(svc, "/v1/allocate", body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["path"] == "body.cells.2.slices.0.last_period"


def test_agents_and_transfer_over_http(svc, tmp_path) -> None:
    from slicing.rl.transfer import pretrain_source
    from slicing.runtime.transfer_actor import start_transfer_actor, stop_transfer_actor

    sc = svc["scenario"]
    src = pretrain_source(sc, [0, 1, 2], tmp_path / "src", iterations=1, episode_len=8, hidden=(16,))
    handle = start_transfer_actor(sc, tmp_path / "registry", episodes=1, episode_len=8, iterations=1, vae_epochs=10)
    try:
        import ray

        ray.get(handle.register.remote("A", [0, 1, 2], src["checkpoint"], src["transitions"]))
        r = get(svc, "/v1/agents")
        assert r.status_code == 200 and [a["name"] for a in r.json()["agents"]] == ["A"]
        body = {"target": "T", "cells": [0, 1, 2], "strategy": "model", "iterations": 1}
        assert post(svc, "/v1/transfer", body).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = post(svc, "/v1/transfer", body | {"source": "nobody"}, headers=auth)
        assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.source"
        r = post(svc, "/v1/transfer", body | {"cells": [0, 9999]}, headers=auth)
        assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.cells"
        r = post(svc, "/v1/transfer", body | {"strategy": "magic"}, headers=auth)
        assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.strategy"
        r = post(svc, "/v1/transfer", body, headers=auth)
        assert r.status_code == 202, r.text
        out = r.json()
        assert out["source"] == "A" and out["ranking"][0]["source"] == "A" and out["agent"]["status"] == "training"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            agents = {a["name"]: a for a in get(svc, "/v1/agents").json()["agents"]}
            if agents["T"]["status"] != "training":
                break
            time.sleep(1.0)
        assert agents["T"]["status"] == "ready", agents["T"]["error"]
        assert agents["T"]["source"] == "A" and agents["T"]["checkpoint"]
    finally:
        stop_transfer_actor()


def test_too_many_cells_is_413(svc) -> None:
    r = post(svc, "/v1/allocate", {"scheme": "equal", "cells": [{"cell_id": str(i)} for i in range(MAX_CELLS + 1)]})
    assert r.status_code == 413 and str(MAX_CELLS) in r.json()["detail"]
    ok = post(svc, "/v1/allocate", {"scheme": "equal",
                                    "cells": random_cells(MAX_CELLS, np.random.default_rng(1), (1, 2))})
    assert ok.status_code == 200


def test_invalid_query_is_422(svc) -> None:
    for q, path in [("limit=0", "query.limit"), ("limit=10001", "query.limit"), ("offset=-1", "query.offset"),
                    ("limit=abc", "query.limit")]:
        r = get(svc, f"/v1/cells?{q}")
        assert r.status_code == 422 and path in [d["path"] for d in r.json()["detail"]]


# --------------------------------------------------------------------------------------------- population


def test_cells_paging(svc) -> None:
    n = svc["cells"]
    first = get(svc, "/v1/cells?limit=10").json()
    assert first == {"cells": [str(i) for i in range(10)], "total": n, "limit": 10, "offset": 0}
    default = get(svc, "/v1/cells").json()
    assert default["limit"] == 100 and default["cells"] == [str(i) for i in range(n)]
    tail = get(svc, f"/v1/cells?limit=100&offset={n - 5}").json()
    assert tail["cells"] == [str(i) for i in range(n - 5, n)] and tail["offset"] == n - 5
    assert get(svc, f"/v1/cells?offset={n + 10}").json()["cells"] == []
    pages = [get(svc, f"/v1/cells?limit=7&offset={o}").json()["cells"] for o in range(0, n, 7)]
    assert [c for page in pages for c in page] == [str(i) for i in range(n)]


def test_cell_allocation_of_every_cell(svc) -> None:
    ids = get(svc, "/v1/cells?limit=10000").json()["cells"]
    counts = set()
    for cid in ids:
        r = get(svc, f"/v1/cells/{cid}/allocation")
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["cell_id"] == cid and a["model_version"] == svc["version"] and a["scheme"] == "idla"
        assert a["period"] == HISTORY
        _ratios_ok(a["slices"])
        counts.add(len(a["slices"]))
    assert counts == {3, 4}  # half the cells got slice 3 on top of [1, 2, 4]


@pytest.mark.parametrize("cid", ["100000", "48", "abc", "-1", "1.5", "99999999999999999999"])
def test_unknown_cell_is_404(svc, cid: str) -> None:
    r = get(svc, f"/v1/cells/{cid}/allocation")
    assert r.status_code == 404 and "unknown cell" in r.json()["detail"]


def test_new_period_is_served_after_a_round(svc) -> None:
    import ray

    before = get(svc, "/v1/cells/5/allocation").json()
    ray.get(svc["pop"].run_period.remote())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = get(svc, "/v1/cells/5/allocation").json()
        if now["period"] == before["period"] + 1:
            break
        time.sleep(0.2)
    assert now["period"] == before["period"] + 1  # the per-period cache was invalidated


# ---------------------------------------------------------------------------------- GET /v1/allocations (bulk)


def _walk(svc, limit: int, period: int | None = None) -> list[dict]:
    url = f"/v1/allocations?limit={limit}" + ("" if period is None else f"&period={period}")
    pages = []
    while url:
        r = get(svc, url)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = pages[-1]["next"]
    return pages


def test_allocation_pages_walk_the_whole_population_in_one_period(svc) -> None:
    pages = _walk(svc, 20)
    assert [p["offset"] for p in pages] == [0, 20, 40] and len({p["period"] for p in pages}) == 1
    cells = [c for p in pages for c in p["cells"]]
    assert [c["cell_id"] for c in cells] == [str(i) for i in range(svc["cells"])]
    period = pages[0]["period"]
    for cell in (cells[0], cells[25], cells[-1]):  # the bulk form agrees with the per-cell GET of that period
        one = get(svc, f"/v1/cells/{cell['cell_id']}/allocation").json()
        if one["period"] != period:
            continue  # a period passed in between: compared in the consistency test below
        assert [s["snssai"] for s in cell["slices"]] == [s["snssai"] for s in one["slices"]]
        for bulk, single in zip(cell["slices"], one["slices"], strict=True):
            ratio = bulk["rRMPolicyRatio"]
            assert bulk["share"] == single["share"] and ratio["resourceType"] == "prb"
            assert (ratio["rRMPolicyMaxRatio"], ratio["rRMPolicyMinRatio"], ratio["rRMPolicyDedicatedRatio"]) == (
                single["rrm_policy"]["max_ratio"], single["rrm_policy"]["min_ratio"],
                single["rrm_policy"]["dedicated_ratio"])
            assert ratio["rRMPolicyMemberList"] == [{"plmnId": {"mcc": "001", "mnc": "01"},
                                                     "snssai": as_3gpp(bulk["snssai"])}]
    for c in cells:
        assert sum(s["rRMPolicyRatio"]["rRMPolicyMinRatio"] for s in c["slices"]) <= 100


def test_a_walk_stays_in_its_period_across_a_period_change_until_it_is_gone(svc) -> None:
    import ray

    from slicing.runtime.population import KEEP_PERIODS

    first = get(svc, "/v1/allocations?limit=10").json()
    period = first["period"]
    before = get(svc, f"/v1/allocations?offset=10&limit=10&period={period}").json()
    ray.get(svc["pop"].run_period.remote())
    after = get(svc, first["next"])  # the next page of the walk, after the population moved on
    assert after.status_code == 200 and after.json()["period"] == period and after.json() == before
    assert get(svc, "/v1/allocations?limit=1").json()["period"] == period + 1  # a new walk starts at the newest
    r = get(svc, f"/v1/allocations?period={period + 5}")
    assert r.status_code == 404 and "not allocated yet" in r.json()["detail"]
    for _ in range(KEEP_PERIODS):
        ray.get(svc["pop"].run_period.remote())
    r = get(svc, first["next"])
    assert r.status_code == 410 and "no longer held" in r.json()["detail"], r.text


def test_export_streams_every_cell_as_ndjson_or_arrow(svc) -> None:
    import pyarrow as pa

    r = requests.get(svc["base"] + "/v1/allocations/export", timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    period = int(r.headers["x-period"])
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == svc["cells"] == int(r.headers["x-cells"])
    page = get(svc, f"/v1/allocations?limit={svc['cells']}&period={period}").json()
    assert lines == page["cells"]  # the same objects as the pages, for the same period
    r = requests.get(svc["base"] + f"/v1/allocations/export?period={period}",
                     headers={"Accept": "application/vnd.apache.arrow.stream"}, timeout=60)
    assert r.status_code == 200, r.text
    table = pa.ipc.open_stream(r.content).read_all()
    assert int(table.schema.metadata[b"period"]) == period
    rows = table.to_pylist()
    expected = [(int(c["cell_id"]), s["snssai"], s["share"], s["rRMPolicyRatio"]["rRMPolicyMinRatio"])
                for c in page["cells"] for s in c["slices"]]
    assert [(x["cell_id"], x["snssai"], x["share"], x["min_ratio"]) for x in rows] == expected
    r = requests.get(svc["base"] + "/v1/allocations/export", headers={"Accept": "text/html"}, timeout=60)
    assert r.status_code == 406


# ---------------------------------------------------------------------------------------------- POST /v1/kpis


def _records(svc, cell: int) -> list[dict]:
    a = get(svc, f"/v1/cells/{cell}/allocation").json()
    return [{"cell_id": str(cell), "snssai": s["snssai"], "users": 4.0 + j, "cqi": 9.5, "prb_util": 0.3,
             "throughput_mbps": 1.2, "delay_ms": 40.0} for j, s in enumerate(a["slices"])]


def test_kpis_need_the_bearer_token(svc) -> None:
    body = {"records": _records(svc, 1)}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        r = post(svc, "/v1/kpis", body, headers=headers)
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
    # auth is checked before the body is parsed: a bad body without a token is still 401
    assert post(svc, "/v1/kpis", {"records": "nonsense"}).status_code == 401


def test_kpis_are_ingested(svc) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    records = _records(svc, 3) + _records(svc, 40)
    r = post(svc, "/v1/kpis", {"records": records}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(records)}
    # refused records name the record and field
    bad_cell = [{**records[0], "cell_id": "4800"}]
    r = post(svc, "/v1/kpis", {"records": bad_cell}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.records.0.cell_id"
    bad_snssai = [records[0], {**records[1], "snssai": "0F-00000F"}]
    r = post(svc, "/v1/kpis", {"records": bad_snssai}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.records.1.snssai"
    r = post(svc, "/v1/kpis", {"records": [{**records[0], "cqi": 16}]}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body.records.0.cqi"
    # 3GPP's object and the short string name the same slices as the canonical form
    objects = [{**rec, "snssai": as_3gpp(rec["snssai"])} for rec in _records(svc, 5)]
    short = [{**rec, "snssai": rec["snssai"].split("-")[0].lstrip("0") + "-" + rec["snssai"].split("-")[1]}
             for rec in _records(svc, 6)]
    assert short[0]["snssai"] != _records(svc, 6)[0]["snssai"]
    r = post(svc, "/v1/kpis", {"records": objects + short}, headers=auth)
    assert r.status_code == 200 and r.json() == {"accepted": len(objects) + len(short)}, r.text


# ---------------------------------------------------------------------------------------------------- overload


def test_overload_is_503_with_retry_after(svc) -> None:
    body = json.dumps({"scheme": "idla", "cells": random_cells(MAX_CELLS, np.random.default_rng(9), (4, 6))})

    def one(_: int) -> requests.Response:
        return requests.post(svc["base"] + "/v1/allocate", data=body, headers={"content-type": "application/json"},
                             timeout=60)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(one, range(12)))
    assert time.monotonic() - t0 < 60
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    rejected = [r for r in responses if r.status_code == 503]
    assert rejected and 200 in codes, codes
    for r in rejected:
        assert int(r.headers["Retry-After"]) >= 0 and "overloaded" in r.json()["detail"]
    assert get(svc, "/healthz").status_code == 200  # probes are not limited


# ------------------------------------------------------------------------------------------- e2e slices


def test_e2e_allocate_over_http(svc) -> None:
    from slicing.models.slice_model import load_slice_model

    body = {"slices": [{"slice_id": "embb-1", "traffic": {"mean_users_per_s": 2.0, "std_users_per_s": 0.5},
                        "q_thresh_mbps": 4.0, "beta_thresh": 0.2,
                        "sla": {"latency_ms": 40.0, "reliability": 0.999, "throughput_mbps": 8.0}},
                       {"slice_id": "urllc-1", "traffic": {"samples": [1.0, 1.5, 2.0]},
                        "sla": {"latency_ms": 2.0, "reliability": 0.99999, "throughput_mbps": 1.0}}]}
    r = post(svc, "/v1/e2e/allocate", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == load_slice_model(svc["slice_model"]).version
    ok, bad = out["slices"]
    assert ok["feasible"] and ok["predicted_e_beta"] <= 0.2 + 1e-6 and set(ok["targets"]) == {"ran", "transport",
                                                                                                "core"}
    assert not bad["feasible"] and "latency_ms" in bad["reason"]  # an infeasible SLA is an answer, not a 500


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda s: s.update(beta_thresh=1.5), "body.slices.0.beta_thresh"),
    (lambda s: s["traffic"].update(mean_users_per_s=-1.0), "body.slices.0.traffic.mean_users_per_s"),
    (lambda s: s["traffic"].update(mean_users_per_s=50.0), "body.slices.0.traffic.mean_users_per_s")])
def test_e2e_allocate_bad_input_is_422_naming_the_field(svc, mutate, path: str) -> None:
    one = {"slice_id": "a", "traffic": {"mean_users_per_s": 2.0}}
    mutate(one)
    r = post(svc, "/v1/e2e/allocate", {"slices": [one]})
    assert r.status_code == 422, r.text
    assert path in [d["path"] for d in r.json()["detail"]]


def test_population_e2e_allocations_are_paged(svc) -> None:
    from slicing.models.slice_model import load_slice_model

    first = get(svc, "/v1/e2e/allocations?limit=5")
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["model_version"] == load_slice_model(svc["slice_model"]).version
    assert page["total"] >= svc["cells"] // 3  # at least one active slice per site
    assert len(page["instances"]) == 5
    for row in page["instances"]:
        assert 0 <= row["transport_mbps"] <= 50 and 0 <= row["cpu_millicores"] <= 4500
    nxt = get(svc, "/v1/e2e/allocations?limit=5&offset=5").json()
    assert [(r["group"], r["slice"]) for r in nxt["instances"]] != [(r["group"], r["slice"]) for r in page["instances"]]
    assert get(svc, "/v1/e2e/allocations?limit=0").status_code == 422


# ---------------------------------------------------------------------------------- model roll-out (last: it
# switches the estimator and back, which the earlier tests' model_version checks must not see)


def _wait_replica_version(svc, version: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = get(svc, "/readyz").json()["model_version"]
        if seen == version:
            break
        time.sleep(0.2)
    return seen


def test_model_rollout_under_load_never_fails_or_mixes_and_rolls_back(svc, tmp_path) -> None:
    import threading

    import ray
    import torch

    from slicing.models.qos_estimator import estimator_from_payload, save_estimator

    auth = {"Authorization": f"Bearer {TOKEN}"}
    old = get(svc, "/readyz").json()["model_version"]
    model = estimator_from_payload(ray.get(svc["pop"].estimator_payload.remote()))
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # another version: same shapes, other weights
    model.version = None
    new = save_estimator(model, tmp_path / "new.pt")
    assert new != old
    results: list[tuple[int, str]] = []
    stop = threading.Event()
    body = json.dumps(valid_body())

    def steady_load() -> None:  # bounded: at most 1,000 requests, one at a time, ~20/s
        session = requests.Session()
        while not stop.is_set() and len(results) < 1000:
            r = session.post(svc["base"] + "/v1/allocate", data=body, headers={"content-type": "application/json"},
                             timeout=30)
            results.append((r.status_code, r.json().get("model_version") if r.status_code == 200 else r.text))
            time.sleep(0.05)

    loader = threading.Thread(target=steady_load, daemon=True)
    loader.start()
    try:
        time.sleep(1.0)
        r = requests.post(svc["base"] + "/v1/models", data=(tmp_path / "new.pt").read_bytes(),
                          headers={**auth, "content-type": "application/octet-stream"}, timeout=60)
        assert r.status_code == 202, r.text
        staged = r.json()
        assert staged["version"] == new and staged["status"] == "pending"
        assert get(svc, "/v1/models").json()["pending"] == new
        ray.get(svc["pop"].run_period.remote())  # the period boundary
        assert get(svc, "/v1/models").json()["active"] == new
        assert _wait_replica_version(svc, new) == new
        time.sleep(1.0)  # some load on the new version
    finally:
        stop.set()
        loader.join(60)
    codes = [c for c, _ in results]
    versions = [v for _, v in results]
    assert len(results) >= 20 and codes.count(200) == len(codes), [x for x in results if x[0] != 200][:3]
    assert set(versions) == {old, new} and versions[-1] == new
    switch = versions.index(new)
    assert set(versions[:switch]) == {old} and set(versions[switch:]) == {new}  # one switch, never back and forth
    print(f"roll-out under load: {len(results)} requests, {len(codes) - codes.count(200)} failed, {switch} answered "
          f"by {old}, {len(results) - switch} by {new}")

    # refused: a file that does not load, without the token, an unknown version; the new model keeps serving
    r = requests.post(svc["base"] + "/v1/models", data=b"not an estimator", headers=auth, timeout=60)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body"
    assert requests.post(svc["base"] + "/v1/models", data=b"x", timeout=60).status_code == 401
    assert requests.post(svc["base"] + "/v1/models/abc/activate", headers=auth, timeout=60).status_code == 404
    listed = get(svc, "/v1/models").json()
    assert listed["active"] == new and listed["pending"] is None
    assert [v["version"] for v in listed["versions"]][:2] == [new, old]

    # roll back to the old version at the next period, from the shell (`slicing models`)
    from typer.testing import CliRunner

    from slicing.cli import app

    runner, env = CliRunner(), {"SLICING_API_TOKEN": TOKEN}
    res = runner.invoke(app, ["models", "list", "--url", svc["base"], "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1])["active"] == new, res.output
    res = runner.invoke(app, ["models", "activate", "nope", "--url", svc["base"]], env=env)
    assert res.exit_code == 2 and "404" in res.output, res.output
    res = runner.invoke(app, ["models", "activate", old, "--url", svc["base"], "--json"], env={"SLICING_API_TOKEN": ""})
    assert res.exit_code == 2 and "SLICING_API_TOKEN" in res.output, res.output
    res = runner.invoke(app, ["models", "activate", old, "--url", svc["base"], "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["status"] == "pending"
    ray.get(svc["pop"].run_period.remote())
    assert get(svc, "/v1/models").json()["active"] == old
    assert _wait_replica_version(svc, old) == old


# ------------------------------------------------------------------------------------------- A1-P v2 policies

A1 = "/A1-P/v2/policytypes/ORAN_SliceSLATarget_1.0.0"
PLMN = {"mcc": "001", "mnc": "01"}


def a1_policy(snssai: dict, objectives: dict, cells: list[int] | None = None, plmn: dict = PLMN) -> dict:
    body = {"scope": {"sliceId": {**snssai, "plmnId": plmn}}, "sliceSlaObjectives": objectives}
    if cells is not None:
        body["sliceSlaResources"] = {"cellIdList": [{"plmnId": plmn, "cId": {"ncI": c}} for c in cells]}
    return body


def a1_put(svc, policy_id: str, body, token: str | None = TOKEN) -> requests.Response:
    headers = {"content-type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return requests.put(f"{svc['base']}{A1}/policies/{policy_id}", data=json.dumps(body), headers=headers, timeout=60)


def a1_delete(svc, policy_id: str) -> requests.Response:
    return requests.delete(f"{svc['base']}{A1}/policies/{policy_id}", headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=60)


def slice_shares(svc, period: int, cells: list[int], snssai: str) -> np.ndarray:
    page = get(svc, f"/v1/allocations?offset=0&limit={svc['cells']}&period={period}").json()
    by_cell = {int(c["cell_id"]): c for c in page["cells"]}
    return np.array([next((s["share"] for s in by_cell[c]["slices"] if s["snssai"] == snssai), 0.0) for c in cells])


def test_a1_policy_types_and_their_schemas(svc) -> None:
    assert get(svc, "/A1-P/v2/policytypes").json() == ["ORAN_SliceSLATarget_1.0.0"]
    t = get(svc, A1).json()
    props = t["policySchema"]["properties"]
    assert {"scope", "sliceSlaObjectives", "sliceSlaResources"} <= set(props)
    assert t["statusSchema"]["properties"]["enforceStatus"]["enum"] == ["ENFORCED", "NOT_ENFORCED"]
    r = get(svc, "/A1-P/v2/policytypes/ORAN_QoSTarget_1.0.0")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404 and "ORAN_QoSTarget_1.0.0" in r.json()["detail"]
    doc = get(svc, "/openapi.json").json()["paths"][A1.replace("ORAN_SliceSLATarget_1.0.0", "{policyTypeId}")
                                                    + "/policies/{policyId}"]
    assert set(doc["put"]["responses"]) == {"200", "201", "400", "401", "404", "409", "413", "503"}
    assert set(doc["delete"]["responses"]) == {"204", "400", "401", "404", "503"}


@pytest.mark.parametrize("mutate, where", [
    (lambda b: b["scope"]["sliceId"].update(sst=300), "scope.sliceId.sst"),
    (lambda b: b["scope"]["sliceId"].update(plmnId={"mcc": "999", "mnc": "99"}), "scope.sliceId.plmnId"),
    (lambda b: b["scope"]["sliceId"].update(sd="0000ff"), "scope.sliceId"),
    (lambda b: b["sliceSlaObjectives"].update(maxDlThptPerUe=True), "sliceSlaObjectives.maxDlThptPerUe"),
    (lambda b: b["sliceSlaObjectives"].update(maxDlThptPerSlice=1000), "sliceSlaObjectives.maxDlThptPerSlice"),
    (lambda b: b.update(sliceSlaObjectives={}), "sliceSlaObjectives"),
    (lambda b: b["sliceSlaResources"]["cellIdList"][1]["cId"].update(ncI=10**6),
     "sliceSlaResources.cellIdList.1.cId.ncI"),
    (lambda b: b["sliceSlaResources"]["cellIdList"][0].update(plmnId={"mcc": "001", "mnc": "02"}),
     "sliceSlaResources.cellIdList.0.plmnId"),
])
def test_a1_bad_policy_is_400_problem_naming_the_field(svc, mutate, where: str) -> None:
    body = a1_policy({"sst": 1, "sd": "000001"}, {"slicePriority": 2.0}, cells=[0, 1])
    mutate(body)
    r = a1_put(svc, "bad", body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert problem["detail"].startswith(where + ":"), problem
    assert get(svc, A1 + "/policies/bad").status_code == 404  # nothing was stored


def test_a1_policy_moves_shares_the_way_it_asks(svc) -> None:
    """Period P without the policy, P+1 with it, P+2 without it again: in the policy's cells the slice's share at P+1
    stands above the line from P to P+2 (what the traffic alone would give), and more than in the other cells. The
    policy asks for a tighter delay (40 ms instead of 100), which more share buys (see docs/operators.md)."""
    import ray

    pop, embb = svc["pop"], "01-000001"
    ray.get(pop.run_period.remote())  # an allocation by IDLA, not the warm-up's traffic baseline
    p0 = ray.get(pop.period.remote())
    cells, rest = list(range(12)), list(range(12, svc["cells"]))
    body = a1_policy({"sst": 1, "sd": "000001"}, {"maxDlPacketDelayPerUe": 40, "slicePriority": 4.0}, cells)
    assert a1_put(svc, "embb-direction", body).status_code == 201
    ray.get(pop.run_period.remote())
    assert a1_delete(svc, "embb-direction").status_code == 204
    ray.get(pop.run_period.remote())

    def lift(group: list[int]) -> np.ndarray:
        s0, s1, s2 = (slice_shares(svc, p0 + k, group, embb) for k in range(3))
        return s1 - (s0 + s2) / 2

    inside, outside = lift(cells), lift(rest)
    print(f"A1 direction: lift {inside.mean():.3f} in the policy's cells, {outside.mean():.3f} elsewhere")
    assert inside.mean() > 0.05 and inside.mean() > outside.mean() + 0.05, (inside, outside)
    assert (inside > 0).sum() >= 9, inside  # most of its cells, not a few outliers


def test_a1_policy_life_cycle_enforcement_and_deletion(svc) -> None:
    import ray

    pop, embb = svc["pop"], "01-000001"
    ray.get(pop.run_period.remote())  # a period allocated by IDLA (not the warm-up's traffic baseline) to compare
    cells = list(range(12))
    body = a1_policy({"sst": 1, "sd": "000001"}, {"maxDlPacketDelayPerUe": 40, "slicePriority": 8.0}, cells)
    r = a1_put(svc, "embb-gold", body, token=None)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    before = ray.get(pop.period.remote())
    r = a1_put(svc, "embb-gold", body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{A1}/policies/embb-gold" and r.json() == body
    assert a1_put(svc, "embb-gold", body).status_code == 200  # the same PUT again: an update
    assert get(svc, A1 + "/policies").json() == ["embb-gold"]
    assert get(svc, A1 + "/policies/embb-gold").json() == body
    status = get(svc, A1 + "/policies/embb-gold/status").json()
    assert status["enforceStatus"] == "NOT_ENFORCED" and status["enforceReason"] == "OTHER_REASON"
    assert "pending" in status["detail"]
    # another policy for the same slice in overlapping cells is refused; other cells or slices are fine
    r = a1_put(svc, "embb-silver", a1_policy({"sst": 1, "sd": "000001"}, {"slicePriority": 2.0}, [11, 12]))
    assert r.status_code == 409 and "embb-gold" in r.json()["detail"]

    ray.get(pop.run_period.remote())  # the next period is allocated under the policy
    req = get(svc, "/v1/cells/0/requirements").json()["slices"]
    assert req[embb] == {"throughput_req_mbps": 2.0, "delay_req_ms": 40.0, "guaranteed_mbps": None,
                         "priority": 8.0, "policy": "embb-gold"}
    assert get(svc, "/v1/cells/12/requirements").json()["slices"][embb]["policy"] is None
    status = get(svc, A1 + "/policies/embb-gold/status").json()
    assert status["enforceStatus"] == "ENFORCED", status
    assert status["effectivePeriod"] == before + 1 and status["cellsInScope"] == 12 and status["cellsActive"] == 12
    ray.get(pop.run_period.remote())
    measured = get(svc, A1 + "/policies/embb-gold/status").json()["satisfied"]
    assert measured["period"] == before + 1 and measured["cells"] == 12 and 0 <= measured["met"] <= 12

    # an SLA no cell can meet: 100 Gbit/s per UE
    impossible = a1_policy({"sst": 2, "sd": "000004"}, {"maxDlThptPerUe": 1e8}, [20, 21, 22])
    assert a1_put(svc, "urllc-impossible", impossible).status_code == 201
    ray.get(pop.run_period.remote())
    status = get(svc, A1 + "/policies/urllc-impossible/status").json()
    assert status["enforceStatus"] == "NOT_ENFORCED" and status["enforceReason"] == "STATEMENT_NOT_APPLICABLE"
    assert status["infeasibleCount"] == 3 and status["infeasibleCells"] == [20, 21, 22], status
    assert "infeasible in 3 of 3 cells" in status["detail"]

    # DELETE: back to the catalogue's requirements from the next period
    for pid in ("embb-gold", "urllc-impossible"):
        assert a1_delete(svc, pid).status_code == 204
    assert a1_delete(svc, "embb-gold").status_code == 404
    r = get(svc, A1 + "/policies/embb-gold/status")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    ray.get(pop.run_period.remote())
    req = get(svc, "/v1/cells/0/requirements").json()["slices"][embb]
    assert req == {"throughput_req_mbps": 2.0, "delay_req_ms": 100.0, "guaranteed_mbps": None, "priority": 1.0,
                   "policy": None}
    assert get(svc, A1 + "/policies").json() == []


def test_the_operator_guide_commands_work(svc) -> None:
    """docs/operators.md's curl walk-through, block by block, against this service (its address for 127.0.0.1:8000),
    one period between the PUT and the status that says ENFORCED. Each command exits 0; where the page shows JSON,
    the answer has its keys (and its enforceStatus, policy and list values); other shown lines are equal."""
    import os
    import re
    import subprocess

    import ray

    from tests.test_docs import ROOT, parse_commands

    page = "docs/operators.md"
    lines = (ROOT / page).read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.strip() == "```console"]
    commands = [c for c in parse_commands(page) if c.marker == "needs: slicing serve running"]
    blocks = [[c for c in commands if a < c.line_no < b] for a, b in zip(starts, [*starts[1:], 10**9], strict=True)]
    blocks = [b for b in blocks if b]
    assert len(blocks) == 4 and len(commands) == 9
    env = {**os.environ, "SLICING_API_TOKEN": TOKEN}
    host = svc["base"].removeprefix("http://")
    for k, block in enumerate(blocks):
        if k == 1:  # "One period later"
            ray.get(svc["pop"].run_period.remote())
        for c in block:
            text = re.sub(r"127\.0\.0\.1:8000", host, c.text)
            done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{c.where()}\n{done.stderr}"
            shown = [line for line in c.output if line.strip()]
            if not shown:
                continue
            got = done.stdout.strip().splitlines()[-1]
            try:
                want = json.loads(shown[-1])
            except ValueError:
                assert got == shown[-1].strip(), c.where()
                continue
            have = json.loads(got)
            if isinstance(want, dict):
                assert set(want) <= set(have), f"{c.where()}: {sorted(set(want) - set(have))} missing"
                for key in ("enforceStatus", "cellsActive", "policy"):
                    if key in want:
                        assert have[key] == want[key], f"{c.where()}: {key} {have[key]!r}"
                if "slices" in want and isinstance(want["slices"], dict):
                    assert have["slices"]["01-000001"] == want["slices"]["01-000001"], c.where()
            else:
                assert have == want, c.where()


def test_an_rl_checkpoint_is_rolled_out_to_the_population_and_every_replica(svc, tmp_path) -> None:
    """`slicing models push DIR` sends a `slicing train-rl` checkpoint (a gzipped tar): refused with 422 when it does
    not load; otherwise active from the next period, and the replicas' scheme rl answers with it within seconds."""
    import ray
    from typer.testing import CliRunner

    from slicing.cli import app
    from slicing.rl.inference import RlPolicy
    from slicing.rl.train import TrainSettings, train

    other = train(svc["scenario"], TrainSettings(algo="ppo", iterations=0, region=6, episode_len=4, hidden=(16,),
                                                 seed=11), tmp_path / "other")["checkpoint"]
    new = RlPolicy.from_checkpoint(other).version
    assert new != RlPolicy.from_checkpoint(svc["rl_checkpoint"]).version
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(svc["base"] + "/v1/models?kind=rl", data=b"\x1f\x8b not really", headers=auth, timeout=60)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body", r.text
    runner, env = CliRunner(), {"SLICING_API_TOKEN": TOKEN}
    res = runner.invoke(app, ["models", "push", str(other), "--url", svc["base"], "--json"], env=env)
    assert res.exit_code == 0, res.output
    staged = json.loads(res.stdout.strip().splitlines()[-1])
    assert staged["version"] == new and staged["status"] == "pending"
    ray.get(svc["pop"].run_period.remote())
    assert get(svc, "/v1/models").json()["rl"]["active"] == new
    deadline = time.monotonic() + 60
    while get(svc, "/readyz").json()["rl_version"] != new and time.monotonic() < deadline:
        time.sleep(0.5)
    body = {"scheme": "rl", "cells": random_cells(5, np.random.default_rng(8), (1, 4), last_period=True)}
    r = post(svc, "/v1/allocate", body)
    assert r.status_code == 200 and r.json()["model_version"] == new, r.text
    res = runner.invoke(app, ["models", "list", "--url", svc["base"], "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1])["rl"]["active"] == new


def test_overload_through_the_front_is_only_200_or_503_and_recovers(svc) -> None:
    """A bounded `slicing bench overload`: 3x the measured capacity for 3 s, open loop, through the nginx front.
    Every answer is a 200 or a 503 with Retry-After, none times out (10 s), and quiet probes are answered at their
    normal latency again after the load."""
    from slicing.bench.overload import bench_overload

    res = bench_overload(svc["base"], svc["cells"], factor=3.0, seconds=3.0, timeout_s=10.0, front="nginx",
                         capacity_s=2.0, probe_s=2.0, recovery_window_s=4.0, log=lambda m: None)
    print(json.dumps(res))
    assert set(res["statuses"]) <= {"200", "503"}, res["statuses"]
    assert res["timeouts"] == 0 and res["past_timeout"] == 0 and res["shed_without_retry_after"] == 0
    assert res["requests"] >= 3 * res["capacity_rps"] * 3.0 * 0.99
    assert res["ok_rps"] > 0 and res["shed_fraction"] > 0.3  # the excess was shed, the rest served
    assert res["recovery_s"] is not None and res["recovery_s"] < 4.0
    assert res["max_rss_mb"] is not None and res["max_rss_mb"] > 0

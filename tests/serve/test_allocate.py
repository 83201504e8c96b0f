"""Stateless POST /v1/allocate without HTTP (slicing/serve/allocate.py), on a real small estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slicing.bench.serve import random_cells
from slicing.config import HISTORY, IdlaConfig
from slicing.data.history import History
from slicing.models.qos_estimator import build_estimator
from slicing.optim.rrm import RrmPolicyRatios, check_rrm_invariants
from slicing.serve.allocate import allocate, cell_key
from slicing.serve.errors import ServiceError
from slicing.serve.estimators import Estimators
from slicing.serve.models import AllocateRequest
from slicing.serve.population_client import PopulationClient
from slicing.serve.settings import ServiceSettings

SETTINGS = ServiceSettings()


def _no_population():
    raise LookupError("no population actor")


def _estimators(model=None, settings: ServiceSettings = SETTINGS) -> Estimators:
    est = Estimators(settings, PopulationClient(settings, _no_population))
    if model is not None:
        est.set_model(model, "test")
    return est


@pytest.fixture(scope="module")
def model():
    return build_estimator((16, 8), seed=1)


@pytest.fixture(scope="module")
def est(model) -> Estimators:
    return _estimators(model)


def run(req: AllocateRequest, est: Estimators, settings: ServiceSettings = SETTINGS) -> dict:
    return allocate(req, est, settings, IdlaConfig())


def _check_response(out: dict, req: AllocateRequest, version: str) -> None:
    assert out["model_version"] == version
    assert [a["cell_id"] for a in out["allocations"]] == [c.cell_id for c in req.cells]
    for a, c in zip(out["allocations"], req.cells, strict=True):
        assert [s["snssai"] for s in a["slices"]] == [s.snssai for s in c.slices]
        shares = np.array([s["share"] for s in a["slices"]])
        assert (shares >= 0).all() and shares.sum() <= 1.0
        assert math.isfinite(a["predicted_utility"]) and 0 <= a["predicted_utility"] <= len(shares) * math.log(2)
        r = [s["rrm_policy"] for s in a["slices"]]
        ratios = RrmPolicyRatios(max_ratio=np.array([[x["max_ratio"] for x in r]]),
                                 min_ratio=np.array([[x["min_ratio"] for x in r]]),
                                 dedicated_ratio=np.array([[x["dedicated_ratio"] for x in r]]))
        check_rrm_invariants(ratios)


def test_cell_key() -> None:
    assert cell_key("123") == 123
    k = cell_key("cell-a")
    assert k == cell_key("cell-a") and 0 <= k < 2**63 and k != cell_key("cell-b")
    assert cell_key("9" * 19) != int("9" * 19)  # too long for int64: hashed


@pytest.mark.parametrize("scheme", ["idla", "traffic", "equal", "oracle"])
def test_allocate_vectorised_all_schemes(est, model, scheme: str) -> None:
    req = AllocateRequest.model_validate({"scheme": scheme, "cells": random_cells(150, np.random.default_rng(3),
                                                                                  (1, 6))})
    out = run(req, est)
    _check_response(out, req, model.version)
    if scheme == "equal":
        for a in out["allocations"]:
            k = len(a["slices"])
            assert all(abs(s["share"] - 1.0 / k) < 1e-12 for s in a["slices"])


def test_traffic_scheme_uses_last_users_times_requirement(est) -> None:
    h = [1.0] * HISTORY

    def sl(sn: str, users_last: float, tp: float) -> dict:
        return {"snssai": sn, "throughput_req_mbps": tp, "delay_req_ms": 50.0,
                "users_history": h[:-1] + [users_last], "cqi_history": [9.0] * HISTORY}

    req = AllocateRequest.model_validate({"scheme": "traffic", "cells": [
        {"cell_id": "x", "slices": [sl("01-000001", 2.0, 1.0), sl("01-000002", 3.0, 2.0)]}]})
    shares = [s["share"] for s in run(req, est)["allocations"][0]["slices"]]
    assert shares == pytest.approx([2.0 / 8.0, 6.0 / 8.0])


def test_z_and_utility_are_the_history_features_of_the_same_numbers(est, model) -> None:
    """A request whose cells hold the same slices as a History gives the estimator the same z (bit for bit), and
    predicted_utility is sum log(1 + f(share, z)) of those z."""
    rng = np.random.default_rng(12)
    n, s = 4, 3
    users = rng.uniform(0, 30, (HISTORY, n, s)).astype(np.float32)  # [H, N, S], oldest first
    cqi = rng.uniform(0, 15, (HISTORY, n, s)).astype(np.float32)
    tp, dl = np.array([1.5, 0.2, 8.0]), np.array([50.0, 10.0, 300.0])
    hist = History(n, s)
    for t in range(HISTORY):
        hist.push(type("Report", (), {"users": users[t], "cqi": cqi[t]})())
    z = hist.features(tp, dl)  # [N, S, 12]
    cells = [{"cell_id": str(i), "slices": [
        {"snssai": f"01-00000{j + 1}", "throughput_req_mbps": tp[j], "delay_req_ms": dl[j],
         "users_history": users[:, i, j].tolist(), "cqi_history": cqi[:, i, j].tolist()} for j in range(s)]}
        for i in range(n)]
    out = run(AllocateRequest.model_validate({"scheme": "equal", "cells": cells}), est)
    x = np.full((n, s), 1.0 / s)
    with torch.inference_mode():
        f = model(torch.from_numpy(np.concatenate([x.astype(np.float32)[..., None], z], axis=2).reshape(n * s, -1)))
    expect = np.log1p(f.numpy().astype(np.float64)).reshape(n, s).sum(axis=1)
    assert [a["predicted_utility"] for a in out["allocations"]] == expect.tolist()


def test_idla_answer_is_deterministic_and_per_cell(est) -> None:
    cells = random_cells(40, np.random.default_rng(5), (2, 4))
    req = AllocateRequest.model_validate({"scheme": "idla", "cells": cells})
    out = run(req, est)
    assert out == run(req, est)
    alone = run(AllocateRequest.model_validate({"scheme": "idla", "cells": cells[7:8]}), est)
    assert alone["allocations"][0] == out["allocations"][7]  # a cell's answer does not depend on the others


def test_allocate_without_model_is_503() -> None:
    req = AllocateRequest.model_validate({"cells": random_cells(1, np.random.default_rng(0))})
    with pytest.raises(ServiceError) as err:
        run(req, _estimators())
    assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}


def test_rl_scheme_errors_name_the_field(est, tmp_path) -> None:
    cells = random_cells(2, np.random.default_rng(1), (2, 2), last_period=True)
    with pytest.raises(ServiceError) as err:  # not enabled on this service
        run(AllocateRequest.model_validate({"scheme": "rl", "cells": cells}), est)
    assert err.value.status == 422 and err.value.path == "body.scheme" and "SLICING_RL_CHECKPOINT" in err.value.detail
    del cells[1]["slices"][0]["last_period"]
    with pytest.raises(ServiceError) as err:  # checked first
        run(AllocateRequest.model_validate({"scheme": "rl", "cells": cells}), est)
    assert err.value.status == 422 and err.value.path == "body.cells.1.slices.0.last_period"
    settings = ServiceSettings(rl_checkpoint=tmp_path / "missing")
    broken = _estimators(build_estimator((16, 8), seed=1), settings)
    broken.load_rl()
    assert broken.rl_policy is None and broken.rl_error is not None
    ok = random_cells(1, np.random.default_rng(3), (2, 2), last_period=True)
    with pytest.raises(ServiceError) as err:
        run(AllocateRequest.model_validate({"scheme": "rl", "cells": ok}), broken, settings)
    assert err.value.status == 422 and err.value.path == "body.scheme" and "failed to load" in err.value.detail

"""Hostile input against the running service, checked by a third-party fuzzer (schemathesis), plus the hand-made
attacks a fuzzer does not make: a 50 MB body and deeply nested JSON.

The service is `slicing serve`'s (``LocalService``: a 30-cell population, the transfer service, Serve on
127.0.0.1). Schemathesis generates schema-valid and schema-violating requests for every operation of its OpenAPI
(bounded: ``MAX_EXAMPLES`` each, derandomised) and checks every answer:

- no 5xx but 503, and a 503 only with ``Retry-After`` (``retry_after_on_503``);
- a schema-violating request is never accepted (``negative_data_rejection``);
- every status returned is documented for its route (``status_code_conformance``), with a documented content type
  and body (``content_type_conformance``, ``response_schema_conformance``).

``POST /v1/models`` is left to test_serve_app.py: a generated body cannot be an estimator file, and the route is
covered there (422 for anything that does not load).
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "fuzz-token-1"
READ_TOKEN = "fuzz-read-2"
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def service(ray_session, tmp_path_factory, monkeypatch_module):
    from slicing.serve.runner import LocalService, free_port

    tokens = tmp_path_factory.mktemp("tokens")  # both tokens from files, as an operator would mount them
    (tokens / "write").write_text(TOKEN + "\n")
    (tokens / "read").write_text(READ_TOKEN + "\n")
    monkeypatch_module.delenv("SLICING_API_TOKEN", raising=False)
    monkeypatch_module.setenv("SLICING_API_TOKEN_FILE", str(tokens / "write"))  # passed on to the replica
    monkeypatch_module.setenv("SLICING_READ_TOKEN_FILE", str(tokens / "read"))
    svc = LocalService(host="127.0.0.1", port=free_port(), cells=30, shards=1, period_s=900.0, train_epochs=2,
                       registry=tmp_path_factory.mktemp("agents"), log=lambda m: None)
    with svc:
        yield svc.base_url


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def api_schema(service):
    return schemathesis.openapi.from_url(service + "/openapi.json").exclude(path="/v1/models")


def retry_after_on_503(ctx, response, case) -> bool | None:
    """The only 5xx the service may answer is 503, and then with Retry-After."""
    if response.status_code >= 500:
        assert response.status_code == 503, f"{response.status_code} from {case.method} {case.path}"
        assert "retry-after" in {k.lower() for k in response.headers}, f"503 without Retry-After: {case.path}"
    return None


CHECKS = [retry_after_on_503, negative_data_rejection, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def test_the_fuzzer_finds_no_crash_no_accepted_garbage_and_no_undocumented_status(api_schema):
    """Every operation, schema-valid and schema-violating cases (hypothesis drives schemathesis' strategies here
    rather than through its pytest plugin, which does not run under this pytest); all failures are reported."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    failures, cases = [], 0
    for result in api_schema.get_all_operations():  # per operation
        op = result.ok()
        for mode in schemathesis.GenerationMode:  # positive, negative

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case):
                nonlocal cases
                cases += 1
                case.validate_response(case.call(headers=auth, timeout=60), checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # no schema-violating input exists (e.g. GET /healthz takes no parameters)
                assert mode is schemathesis.GenerationMode.NEGATIVE
            except (Exception, BaseExceptionGroup) as err:  # collect, then report every operation that failed
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(err)[:600]}")
    print(f"schemathesis: {cases} generated requests")
    assert cases >= 100
    assert not failures, "\n\n".join(failures)


def test_a_50_mb_body_is_413_before_it_is_parsed(service):
    body = b'{"records": [' + b"0," * (25 * 2**20) + b"0]}"  # 50 MB of valid JSON
    t0 = time.perf_counter()
    r = requests.post(service + "/v1/kpis", data=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                                 "content-type": "application/json"}, timeout=120)
    assert r.status_code == 413, r.text
    assert "max_body_bytes" in r.json()["detail"]
    assert time.perf_counter() - t0 < 60

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(50):
            yield b" " * 2**20

    r = requests.post(service + "/v1/allocate", data=chunks(), headers={"content-type": "application/json"},
                      timeout=120)
    assert r.status_code == 413, r.text
    assert requests.get(service + "/healthz", timeout=10).status_code == 200  # and the replica is fine


@pytest.mark.parametrize("path", ["/v1/allocate", "/v1/kpis", "/v1/e2e/allocate", "/v1/transfer"])
def test_deeply_nested_json_is_4xx(service, path):
    nested = "[" * 100_000 + "]" * 100_000
    r = requests.post(service + path, data=nested, headers={"Authorization": f"Bearer {TOKEN}",
                                                             "content-type": "application/json"}, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    r = requests.post(service + path, data=json.dumps({"cells": [{"a": [[[[1]]]]}]}),
                      headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}, timeout=60)
    assert 400 <= r.status_code < 500


def test_slicing_serve_runs_the_transfer_service(service):
    r = requests.get(service + "/v1/agents", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"agents": []}


def test_reads_need_the_read_or_the_write_token_and_writes_the_write_token(service):
    assert requests.get(service + "/healthz", timeout=10).status_code == 200  # probes stay open
    r = requests.get(service + "/v1/cells", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for token in (READ_TOKEN, TOKEN):
        r = requests.get(service + "/v1/cells", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200 and r.json()["total"] == 30
    r = requests.post(service + "/v1/kpis", data=json.dumps({"records": []}),
                      headers={"Authorization": f"Bearer {READ_TOKEN}", "content-type": "application/json"},
                      timeout=30)
    assert r.status_code == 401  # the read token does not write

"""GCS fault tolerance on a real Redis: the head's GCS server is killed under a running population and HTTP service,
and started again (issue 14, item 1).

Runs ``python -m tests.runtime.gcs_ft`` in a subprocess (a process can connect to one Ray cluster only, and this
session may already hold a local Ray). Needs Debian's ``redis-server``, which ``make test`` installs when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_service_survives_the_loss_of_the_gcs_and_goes_on_where_it_was():
    assert shutil.which("redis-server"), "redis-server is missing: `make test` installs it (apt-get redis-server)"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_REDIS_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "tests.runtime.gcs_ft"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=480, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON line in stdout: {proc.stdout[-2000:]}"
    res = json.loads(lines[-1])
    print(json.dumps({k: v for k, v in res.items() if k != "named_actors"}))

    assert res["node_ips"] == ["127.0.0.1"] and res["redis"].startswith("127.0.0.1:")
    assert res["redis_keys_before_kill"] > 0  # the GCS keeps its tables in Redis
    assert res["gcs_restarted_pid"] != res["gcs_killed_pid"]  # really another GCS process
    # during the outage the service kept answering: 200, or 503 with Retry-After; never a 500, never a hang
    assert res["outage_requests"] >= 10
    assert set(res["outage_statuses"]) <= {"200", "503"}, res["outage_statuses"]
    assert res["outage_503_without_retry_after"] == 0
    assert res["max_latency_s"] < 10.0
    assert set(res["statuses"]) <= {"200", "503"}
    assert res["after_statuses"] == ["200"]
    # the population goes on from the same period, every cell allocated, with the same actors and Serve app
    periods = res["periods_after"]
    assert [p["period"] for p in periods] == [res["period_before"], res["period_before"] + 1]
    assert all(p["cells_unallocated"] == 0 and p["fallback_cells"] == 0 and not p["errors"] for p in periods)
    assert res["same_population"] and res["same_shards"] and res["same_named_actors"]
    assert any("SlicingService" in name for name in res["named_actors"])

"""The embedded local Ray of the entry points listens on 127.0.0.1 only (slicing.runtime.ray_util.loopback_ray),
whether or not Ray was imported first. Run in fresh interpreters without the test session's own loopback switch
(tests/conftest.py sets it), so the product's setting is what is tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CODE = """
import json{first}
from slicing.runtime.ray_util import ensure_ray
ensure_ray(1)
import ray
print(json.dumps({{"node_ip": ray.util.get_node_ip_address(),
                  "nodes": [n["NodeManagerAddress"] for n in ray.nodes()],
                  "gcs": ray.get_runtime_context().gcs_address}}))
ray.shutdown()
"""


@pytest.mark.parametrize("first", ["", "\nimport ray  # imported before ensure_ray, as the RLlib modules do"])
def test_ensure_ray_binds_the_local_ray_to_loopback(first):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    out = subprocess.run([sys.executable, "-c", CODE.format(first=first)], env=env, capture_output=True, text=True,
                         timeout=180, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["node_ip"] == "127.0.0.1" and seen["nodes"] == ["127.0.0.1"], seen
    assert seen["gcs"].startswith("127.0.0.1:"), seen

"""cluster/*.yaml validate with Ray 2.60's own validation, offline; deliberately broken copies fail.

Cluster launcher configs: ``prepare_config`` (defaults filled in, the local provider's node type derived from
head_ip / worker_ips) then ``validate_config`` (Ray's JSON schema, ``additionalProperties: false``), the same
two steps ``ray up`` runs before it contacts any provider. Network access is blocked while they run.

Serve config: ``ServeDeploySchema.model_validate``. Ray's schema ignores unknown keys in some sections (forward
compatibility), so a misspelled key is caught by an extra check that every key is a field of Ray's models.
"""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


# --------------------------------------------------------------------------------------------- cluster launcher


def test_aws_config_validates(no_network) -> None:
    cfg = ray_validate(load("aws.yaml"))
    assert cfg["provider"]["type"] == "aws"
    workers = cfg["available_node_types"]["cpu_worker"]
    assert workers["min_workers"] >= 1 and workers["max_workers"] >= workers["min_workers"]
    assert cfg["available_node_types"]["head"]["max_workers"] == 0
    assert cfg["idle_timeout_minutes"] > 0
    setup = cfg["setup_commands"]
    assert "torch==2.13.0" in setup[0] and "ray[rllib,serve,tune]==2.60.0" in setup[1]
    assert "slicing-0.1.0" in setup[1]
    assert "2.60.0" in cfg["docker"]["image"]


def test_aws_has_a_study_worker_type_that_scales_from_zero(no_network) -> None:
    cfg = ray_validate(load("aws.yaml"))
    study = cfg["available_node_types"]["study_worker"]
    assert study["min_workers"] == 0 and study["max_workers"] >= 1 and study["resources"]["study"] >= 1
    assert cfg["max_workers"] >= study["max_workers"] + cfg["available_node_types"]["cpu_worker"]["max_workers"]


def test_fake_multinode_config_validates_and_stays_on_loopback(no_network) -> None:
    """Validated as given: Ray's prepare_config would merge the provider's defaults file, which 2.60's wheel lacks
    (so the YAML is complete on its own)."""
    from ray.autoscaler._private.util import validate_config

    cfg = load("fake_multinode.yaml")
    validate_config(copy.deepcopy(cfg))
    assert cfg["provider"]["type"] == "fake_multinode"
    assert cfg["provider"]["gcs_address"].startswith("127.0.0.1:")
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and head["max_workers"] == 0  # every run needs a worker
    assert cfg["available_node_types"]["study"]["min_workers"] == 0


def test_onprem_config_validates(no_network) -> None:
    raw = load("onprem.yaml")
    cfg = ray_validate(raw)
    assert cfg["provider"]["type"] == "local"
    assert cfg["provider"]["head_ip"] == "192.0.2.10"
    (node_type,) = list(cfg["available_node_types"])
    assert cfg["available_node_types"][node_type]["max_workers"] == len(raw["provider"]["worker_ips"]) == 2
    setup = " ".join(cfg["setup_commands"])
    assert setup.index("torch==2.13.0") < setup.index("ray[rllib,serve,tune]==2.60.0")
    for ip in [raw["provider"]["head_ip"], *raw["provider"]["worker_ips"]]:
        assert ip.startswith("192.0.2."), "use RFC 5737 documentation addresses only"


def test_every_cluster_key_is_commented() -> None:
    for name in ("aws.yaml", "onprem.yaml", "fake_multinode.yaml"):
        lines = (CLUSTER / name).read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            is_key = stripped and not stripped.startswith(("#", "-")) and ":" in stripped
            if is_key and not line.startswith(" " * 6):  # keys down to the node-type level
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1} {stripped!r} has no comment above it"


@pytest.mark.parametrize("name", ["aws.yaml", "onprem.yaml"])
def test_misspelled_top_level_key_fails(name: str, no_network) -> None:
    import jsonschema

    broken = load(name)
    broken["idle_timeout_minute"] = broken.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        ray_validate(broken)


def test_misspelled_node_type_key_fails(no_network) -> None:
    import jsonschema

    broken = load("aws.yaml")
    broken["available_node_types"]["cpu_worker"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        ray_validate(broken)


def test_wrong_type_fails(no_network) -> None:
    import jsonschema

    broken = load("onprem.yaml")
    broken["idle_timeout_minutes"] = "five"
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(broken)


def test_head_node_type_must_exist(no_network) -> None:
    broken = load("aws.yaml")
    broken["head_node_type"] = "haed"
    with pytest.raises(ValueError, match="head_node_type"):
        ray_validate(broken)


# ------------------------------------------------------------------------------------------------------- serve


def _unknown_keys(data: Any, model: type, where: str = "") -> list[str]:
    """Keys of ``data`` that are not fields (or aliases) of the pydantic ``model``, recursively."""
    from pydantic import BaseModel

    out: list[str] = []
    if not isinstance(data, dict):
        return out
    fields = model.model_fields
    names = set(fields) | {f.alias for f in fields.values() if f.alias}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            out.append(path)
            continue
        ann = fields[key].annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for c in candidates:
            for inner in [c, *getattr(c, "__args__", ())]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    if isinstance(value, list):
                        for i, item in enumerate(value):
                            out += _unknown_keys(item, inner, f"{path}.{i}")
                    else:
                        out += _unknown_keys(value, inner, path)
                    break
            else:
                continue
            break
    return out


def serve_validate(data: dict[str, Any]):
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(data)
    unknown = _unknown_keys(data, ServeDeploySchema)
    if unknown:
        raise ValueError(f"unknown keys in the Serve config: {unknown}")
    return schema


def test_serve_config_validates() -> None:
    schema = serve_validate(load("serve.yaml"))
    (app,) = schema.applications
    assert app.import_path == "serve_app:build_app"
    (dep,) = app.deployments
    assert dep.name == "SlicingService"
    assert dep.max_ongoing_requests > app.args["max_inflight_requests"]
    assert dep.max_queued_requests > 0 and dep.backpressure_config.retry_after_s > 0


def test_serve_config_matches_the_app() -> None:
    """The import path resolves, the builder accepts the args, the deployment name exists in the code."""
    import importlib

    app_cfg = load("serve.yaml")["applications"][0]
    module, attr = app_cfg["import_path"].split(":")
    builder = getattr(importlib.import_module(module), attr)
    application = builder(app_cfg["args"])
    assert type(application).__name__ == "Application"
    assert importlib.import_module(module).SlicingIngress.name == app_cfg["deployments"][0]["name"]
    with pytest.raises(ValueError, match="max_cels_per_request"):
        builder({"max_cels_per_request": 5})


@pytest.mark.parametrize("breakage", ["misspelled_deployment_key", "misspelled_backpressure_key", "bad_import_path",
                                      "zero_ongoing", "app_level_port"])
def test_broken_serve_config_fails(breakage: str) -> None:
    from pydantic import ValidationError

    broken = load("serve.yaml")
    app = broken["applications"][0]
    dep = app["deployments"][0]
    if breakage == "misspelled_deployment_key":
        dep["max_ongoing_request"] = dep.pop("max_ongoing_requests")
    elif breakage == "misspelled_backpressure_key":
        dep["backpressure_config"] = {"retry_after": 1}
    elif breakage == "bad_import_path":
        app["import_path"] = "serve_app"
    elif breakage == "zero_ongoing":
        dep["max_ongoing_requests"] = 0
    else:
        app["port"] = 8001
    with pytest.raises((ValidationError, ValueError)):
        serve_validate(broken)

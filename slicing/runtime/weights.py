"""The QoS estimator as a plain payload for Ray's object store, and back.

A payload is a dict of plain values and float32 numpy arrays (no torch objects, no pickled code), so
``ray.put(payload)`` stores it once, zero-copy, and every shard (or HTTP replica) that ``ray.get``s it rebuilds the
same network with ``estimator_from_payload``. ``version`` is the estimator's content hash (``weights_version``):
shards compare versions and reload only when it changes.

    {"format": "slicing.estimator-payload/1", "version": str, "hidden": [int], "in_dim": int,
     "state": {name: float32 ndarray}}   # the module's state_dict, normalisation buffers included
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from slicing.models.qos_estimator import QosEstimator, weights_version

PAYLOAD_FORMAT = "slicing.estimator-payload/1"


def model_version(model: QosEstimator) -> str:
    """The content hash of ``model`` (its ``version`` attribute if set, else computed)."""
    return model.version or weights_version(model)


def estimator_payload(model: QosEstimator) -> dict[str, Any]:
    """Plain-data form of ``model`` for ``ray.put`` (see module docstring)."""
    state = {k: np.ascontiguousarray(v.detach().cpu().to(torch.float32).numpy()).copy()
             for k, v in model.state_dict().items()}
    return {"format": PAYLOAD_FORMAT, "version": model_version(model), "hidden": list(model.hidden),
            "in_dim": int(model.in_dim), "state": state}


def estimator_from_payload(payload: dict[str, Any]) -> QosEstimator:
    """Rebuild the estimator; raises ``ValueError`` naming the payload field that is wrong."""
    if not isinstance(payload, dict):
        raise ValueError(f"estimator payload: expected a dict, got {type(payload).__name__}")
    if payload.get("format") != PAYLOAD_FORMAT:
        raise ValueError(f"estimator payload.format: expected {PAYLOAD_FORMAT!r}, got {payload.get('format')!r}")
    for key in ("version", "hidden", "in_dim", "state"):
        if key not in payload:
            raise ValueError(f"estimator payload.{key}: missing")
    model = QosEstimator(payload["hidden"], payload["in_dim"])
    try:
        # copies: object-store arrays are read-only views
        model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in
                               payload["state"].items()}, strict=True)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"estimator payload.state: does not match hidden sizes {payload['hidden']}: {first}") from None
    model.eval()
    version = weights_version(model)
    if version != payload["version"]:
        raise ValueError(f"estimator payload.version: {payload['version']!r} does not match its weights ({version})")
    model.version = version
    return model

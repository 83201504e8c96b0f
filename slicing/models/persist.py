"""The one versioned torch file format of the project's models, and the plain payload for Ray's object store.

A model file is one ``torch.save``d dict of plain tensors / lists / ints / strings (``weights_only``-loadable)::

    {"format": "<tag>/<n>", "state_dict": {name: tensor}, <the model's constructor fields>, "version": str}

``version`` is the content hash of the weights (``weights_version``: sha256 over the sorted state's names, shapes
and float32 bytes, first 12 hex chars); loading recomputes it and rejects a file whose weights do not match it.
Files are written to ``<name>.tmp`` and renamed, so a reader never sees half a file. The model modules
(``qos_estimator.save_estimator`` / ``load_estimator``, ``vae.save_vae`` / ``load_vae``) say which constructor fields
they store and check them; everything else (reading, required keys, format tag, state shapes, version) is here,
with one error type per model (a ``ModelFileError`` naming the file and the problem).

The object-store payload (``module_payload`` / ``check_payload``) is the same content as plain data: float32 numpy
arrays instead of tensors, so ``ray.put`` stores it once, zero-copy, and every reader rebuilds the same module.
This module imports no model class (the model modules import it) and no Ray.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or inconsistent; the message names the file and the problem."""


def weights_version(model: nn.Module) -> str:
    """First 12 hex chars of sha256 over the state (names, shapes, float32 bytes) in a fixed key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        arr = np.ascontiguousarray(tensor.detach().cpu().to(torch.float32).numpy())
        digest.update(name.encode())
        digest.update(str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:12]


def save_model(model: nn.Module, path: str | Path, file_format: str, fields: Mapping[str, Any]) -> str:
    """Write ``model`` with its constructor ``fields`` (see module docstring); returns the version and sets
    ``model.version``."""
    version = weights_version(model)
    payload = {"format": file_format,
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               **fields, "version": version}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(p)
    model.version = version
    return version


def read_model_file(path: Path, required: tuple[str, ...], error: type[ModelFileError], label: str,
                    file_format: str | None = None) -> dict:
    """The dict stored in ``path``: it exists, unpickles with ``weights_only``, holds ``required`` keys and (if
    given) the format tag ``file_format``; else ``error`` with "<label> file <path>..." in its message."""
    if not path.is_file():
        raise error(f"{label} file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means the same thing to the caller
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise error(f"{label} file {path} is not a readable torch file (corrupt?): {first}") from None
    if not isinstance(payload, dict):
        raise error(f"{label} file {path}: expected a dict, found {type(payload).__name__}")
    missing = [k for k in required if k not in payload]
    if missing:
        raise error(f"{label} file {path}: missing keys {missing}")
    if file_format is not None and payload["format"] != file_format:
        raise error(f"{label} file {path}: format {payload['format']!r}, expected {file_format!r}")
    return payload


def state_mismatch(model: nn.Module, state: object) -> str:
    """'' if ``state`` has exactly the model's keys and tensor shapes, else a short description."""
    if not isinstance(state, dict):
        return f"state_dict is a {type(state).__name__}, not a dict"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        return f"missing {missing}, unexpected {extra}"
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            return f"{key} is a {type(value).__name__}, not a tensor"
        if tuple(value.shape) != shape:
            return f"{key} has shape {tuple(value.shape)}, expected {shape}"
    return ""


def check_version(model: nn.Module, stored: object, error: type[ValueError], where: str,
                  what: str = "stored version ") -> str:
    """Put ``model`` in eval mode and set its ``version``, if its weights hash to the ``stored`` version; else
    ``error`` ("<where>: <what>'...' does not match its weights (...)")."""
    model.eval()
    version = weights_version(model)
    if stored != version:
        raise error(f"{where}: {what}{stored!r} does not match its weights ({version})")
    model.version = version
    return version


# ---------------------------------------------------------------------------------------- object-store payload


def module_payload(model: nn.Module, payload_format: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``{"format", "version", <fields>, "state": {name: float32 ndarray}}`` (normalisation buffers included)."""
    state = {k: np.ascontiguousarray(v.detach().cpu().to(torch.float32).numpy()).copy()
             for k, v in model.state_dict().items()}
    return {"format": payload_format, "version": model.version or weights_version(model), **fields, "state": state}


def check_payload(payload: object, payload_format: str, required: tuple[str, ...], label: str) -> dict[str, Any]:
    """``payload`` if it is a dict with the format tag and ``required`` keys; else ``ValueError`` naming the field."""
    if not isinstance(payload, dict):
        raise ValueError(f"{label}: expected a dict, got {type(payload).__name__}")
    if payload.get("format") != payload_format:
        raise ValueError(f"{label}.format: expected {payload_format!r}, got {payload.get('format')!r}")
    for key in required:
        if key not in payload:
            raise ValueError(f"{label}.{key}: missing")
    return payload


def state_from_payload(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors of a payload's ``state`` (copies: object-store arrays are read-only views)."""
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}

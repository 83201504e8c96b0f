"""Shard checkpoints: one object per shard, on a local folder or any filesystem ``pyarrow.fs`` understands.

``CheckpointStore(uri)`` takes a plain path (-> ``LocalFileSystem``) or a URI (``file:///...``, ``s3://bucket/p``,
``gs://...``, ``hdfs://...``: whatever ``pyarrow.fs.FileSystem.from_uri`` accepts). A state is a nested dict whose
leaves are numpy arrays or JSON values (numbers, strings, bools, None, lists); it is written as one ``.npz``
object (no pickle): arrays under their ``/``-joined paths, the JSON leaves together under ``__meta__``.

Writes are atomic for readers: the bytes go to ``<name>.tmp-<pid>-<n>`` and are then moved onto ``<name>``
(a rename on local disks; object stores make the object visible whole). A crash mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from slicing.config import Scenario

_META = "__meta__"
_counter = itertools.count()


class CheckpointMismatch(ValueError):
    """A checkpoint that belongs to another scenario, cell range or scheme than the shard reading it."""


def scenario_fingerprint(scenario: Scenario) -> str:
    """Short content hash of a scenario: checkpoints of one scenario are not restored into another."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()[:16]


def _flatten(state: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    for key, value in state.items():
        if "/" in key or key == _META:
            raise ValueError(f"checkpoint state key {key!r}: must not contain '/' or be {_META!r}")
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, path + "/", arrays, meta)
        elif isinstance(value, np.ndarray):
            if value.dtype == object:
                raise ValueError(f"checkpoint state {path}: object arrays are not supported")
            arrays[path] = value
        else:
            meta[path] = value


def encode_state(state: dict[str, Any]) -> bytes:
    """One ``.npz`` blob (``allow_pickle=False`` readable) of a nested state dict."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    _flatten(state, "", arrays, meta)
    arrays[_META] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_state(blob: bytes) -> dict[str, Any]:
    """Inverse of ``encode_state``."""
    out: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        *parents, leaf = path.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        for key in npz.files:
            if key != _META:
                put(key, npz[key])
        for key, value in json.loads(str(npz[_META])).items():
            put(key, value)
    return out


class CheckpointStore:
    """Save / load named states under one folder or URI prefix."""

    def __init__(self, uri: str | Path) -> None:
        text = str(uri)
        if not text:
            raise ValueError("storage: empty path or URI")
        if "://" in text:
            try:
                self.fs, self.base = pafs.FileSystem.from_uri(text)
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise ValueError(f"storage: {text!r} is not a filesystem URI pyarrow understands ({err})") from None
        else:
            self.fs, self.base = pafs.LocalFileSystem(), os.path.abspath(text)
        self.uri = text
        self.base = self.base.rstrip("/")
        self.fs.create_dir(self.base, recursive=True)

    def path(self, name: str) -> str:
        if not name or "/" in name:
            raise ValueError(f"checkpoint name {name!r}: must be a non-empty file name")
        return f"{self.base}/{name}"

    def save(self, name: str, state: dict[str, Any]) -> str:
        """Write ``state`` as object ``name`` atomically; returns its path."""
        final = self.path(name)
        tmp = f"{final}.tmp-{os.getpid()}-{next(_counter)}"
        blob = encode_state(state)
        with self.fs.open_output_stream(tmp) as f:
            f.write(blob)
        self.fs.move(tmp, final)
        return final

    def load(self, name: str) -> dict[str, Any] | None:
        """The state saved as ``name``, or None if there is none."""
        path = self.path(name)
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(path) as f:
            blob = f.read()
        try:
            return decode_state(blob)
        except (ValueError, OSError, KeyError) as err:
            raise CheckpointMismatch(f"checkpoint {self.uri}/{name}: unreadable ({err})") from None

    def delete(self, name: str) -> None:
        path = self.path(name)
        if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
            self.fs.delete_file(path)

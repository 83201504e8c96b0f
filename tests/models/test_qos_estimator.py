"""QoS estimator: forward, fast tabulation, its file (round trip, content hash, errors) and object-store payload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import slicing.models.qos_estimator as qe
from slicing.models.qos_estimator import (
    IN_DIM,
    EstimatorFileError,
    QosEstimator,
    estimator_from_payload,
    estimator_payload,
    load_estimator,
    model_version,
    save_estimator,
    tabulate,
    weights_version,
)
from tests.models.helpers import random_model, synth_dataset
from tests.synthetic import synth_z


def test_forward_shape_and_range() -> None:
    model = random_model()
    out = model(torch.randn(64, IN_DIM) * 10)
    assert out.shape == (64,)
    assert torch.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("chunk_bytes", [None, 20_000])
def test_tabulate_equals_forward(chunk_bytes: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if chunk_bytes is not None:  # force many chunks (one cell each)
        monkeypatch.setattr(qe, "_TAB_BYTES", chunk_bytes)
    model = random_model(seed=5)
    z = synth_z(np.random.default_rng(2), (7, 3))  # [N, S, 12]
    grid = np.linspace(0.0, 1.0, 11)
    table = tabulate(model, z, grid)
    assert table.shape == (7, 3, 11) and table.dtype == np.float32
    feats = np.concatenate(
        [np.broadcast_to(grid[None, None, :, None], (7, 3, 11, 1)), np.broadcast_to(z[:, :, None, :], (7, 3, 11, 12))],
        axis=-1,
    ).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(feats.reshape(-1, IN_DIM))).numpy().reshape(7, 3, 11)
    np.testing.assert_allclose(table, ref, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(tabulate(model, torch.from_numpy(z), torch.from_numpy(grid)), table)


def test_tabulate_rejects_wrong_feature_count() -> None:
    with pytest.raises(ValueError, match="12"):
        tabulate(random_model(), np.zeros((2, 2, 11), np.float32), np.linspace(0, 1, 5))


def test_save_load_roundtrip(tmp_path: Path) -> None:
    model = random_model(seed=3)
    path = tmp_path / "est.pt"
    version = save_estimator(model, path)
    assert len(version) == 12 and int(version, 16) >= 0 and model.version == version
    loaded = load_estimator(path)
    assert loaded.version == version and loaded.hidden == model.hidden
    feats = torch.from_numpy(synth_dataset(500, seed=6)[0])
    with torch.no_grad():
        assert torch.equal(loaded(feats), model(feats))
    # the file holds plain data only
    payload = torch.load(path, weights_only=True)
    assert payload["in_dim"] == IN_DIM and payload["hidden"] == [36, 24, 16, 16]
    assert torch.equal(payload["feat_mean"], model.feat_mean)


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    a = random_model(seed=1)
    v1 = save_estimator(a, tmp_path / "a.pt")
    assert save_estimator(random_model(seed=1), tmp_path / "b.pt") == v1  # same weights, same version
    with torch.no_grad():
        a.layers[1].weight[0, 0] += 1e-3
    assert weights_version(a) != v1
    assert save_estimator(a, tmp_path / "a.pt") != v1
    b = random_model(seed=1)
    b.set_normalisation(b.feat_mean + 1, b.feat_std)  # normalisation is part of the function, so of the hash
    assert weights_version(b) != v1


def _payload(model: QosEstimator, path: Path) -> dict:
    save_estimator(model, path)
    return torch.load(path, weights_only=True)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(EstimatorFileError, match="does not exist"):
        load_estimator(tmp_path / "nope.pt")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"definitely not a torch file")
    with pytest.raises(EstimatorFileError, match="not a readable torch file"):
        load_estimator(corrupt)

    truncated = tmp_path / "truncated.pt"
    save_estimator(random_model(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(EstimatorFileError, match="not a readable torch file"):
        load_estimator(truncated)

    path = tmp_path / "p.pt"
    payload = _payload(random_model(), path)
    torch.save({k: v for k, v in payload.items() if k not in ("hidden", "version")}, path)
    with pytest.raises(EstimatorFileError, match=r"missing keys \['hidden', 'version'\]"):
        load_estimator(path)

    torch.save([1, 2, 3], path)
    with pytest.raises(EstimatorFileError, match="expected a dict"):
        load_estimator(path)

    wrong_dim = QosEstimator((8, 8), in_dim=12)
    save_estimator(wrong_dim, path)
    with pytest.raises(EstimatorFileError, match="wrong input dimension 12, expected 13"):
        load_estimator(path)

    payload = _payload(random_model(), path)
    torch.save({**payload, "hidden": [36, 24, 16]}, path)
    with pytest.raises(EstimatorFileError, match="weights do not match hidden sizes"):
        load_estimator(path)

    payload = _payload(random_model(), path)
    state = dict(payload["state_dict"])
    state["layers.0.weight"] = state["layers.0.weight"] + 1.0
    torch.save({**payload, "state_dict": state}, path)
    with pytest.raises(EstimatorFileError, match="does not match its weights"):
        load_estimator(path)

    assert issubclass(EstimatorFileError, ValueError)


def test_payload_roundtrip_is_plain_data() -> None:
    model = random_model(seed=2)
    payload = estimator_payload(model)
    assert payload["format"] == qe.PAYLOAD_FORMAT and payload["version"] == weights_version(model)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in payload["state"].values())
    for v in payload["state"].values():
        v.setflags(write=False)  # object-store arrays are read-only views
    back = estimator_from_payload(payload)
    assert back.version == model_version(model) and back.hidden == model.hidden and not back.training
    feats = torch.from_numpy(synth_dataset(300, seed=8)[0])
    with torch.no_grad():
        assert torch.equal(back(feats), model(feats))


def test_payload_errors_name_the_field() -> None:
    payload = estimator_payload(random_model(seed=2))
    with pytest.raises(ValueError, match="estimator payload: expected a dict"):
        estimator_from_payload([payload])
    with pytest.raises(ValueError, match="estimator payload.format"):
        estimator_from_payload({**payload, "format": "other/1"})
    with pytest.raises(ValueError, match="estimator payload.state: missing"):
        estimator_from_payload({k: v for k, v in payload.items() if k != "state"})
    with pytest.raises(ValueError, match=r"estimator payload.state: does not match hidden sizes \[8\]"):
        estimator_from_payload({**payload, "hidden": [8]})
    state = {**payload["state"], "out.bias": payload["state"]["out.bias"] + 1.0}
    with pytest.raises(ValueError, match="estimator payload.version: .* does not match its weights"):
        estimator_from_payload({**payload, "state": state})

"""QoS estimator: forward, fast tabulation, training (fast loop == torch reference), persistence and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.synthetic import synth_z

import slicing.models.qos_estimator as qe
from slicing.config import EstimatorConfig
from slicing.models.qos_estimator import (
    IN_DIM,
    EstimatorFileError,
    QosEstimator,
    build_estimator,
    load_estimator,
    save_estimator,
    tabulate,
    train_estimator,
    weights_version,
)


def synth_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """r = clip(x * 10 / (users_mean * req), 0, 1): learnable, monotone in x."""
    rng = np.random.default_rng(seed)
    z = synth_z(rng, (n,))
    x = rng.uniform(0.0, 1.0, n).astype(np.float32)
    r = np.clip(x * 10.0 / (z[:, :5].mean(axis=1) * z[:, 10]), 0.0, 1.0)
    return np.concatenate([x[:, None], z], axis=1).astype(np.float32), r.astype(np.float32)


def random_model(seed: int = 0, hidden: tuple[int, ...] = (36, 24, 16, 16)) -> QosEstimator:
    model = build_estimator(hidden, seed)
    g = torch.Generator().manual_seed(seed + 100)
    mean = torch.rand(IN_DIM, generator=g) * 5.0
    std = torch.rand(IN_DIM, generator=g) * 3.0 + 0.5
    model.set_normalisation(mean, std)  # deliberately also moves x's mean/std: tabulate must honour them
    return model.eval()


@pytest.fixture(scope="module")
def trained() -> tuple[QosEstimator, qe.TrainReport]:
    x, y = synth_dataset(20_000, seed=1)
    return train_estimator(x, y, EstimatorConfig(epochs=15), seed=3)


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


def test_training_learns_synthetic_target(trained: tuple[QosEstimator, qe.TrainReport]) -> None:
    model, report = trained
    assert report.mae_test < 0.05 and report.mae_train < 0.05
    assert report.samples == 20_000 and report.epochs == 15 and report.seconds > 0
    # x is not normalised; z columns are standardised on the training part
    assert model.feat_mean[0] == 0 and model.feat_std[0] == 1
    assert torch.all(model.feat_std[1:] > 0)
    # the fitted f is increasing in x on average (the target is monotone)
    z = synth_z(np.random.default_rng(9), (50, 4))
    table = tabulate(model, z, np.linspace(0, 1, 21))
    assert np.all(table[..., -1] >= table[..., 0])


def test_training_is_deterministic_and_seeded() -> None:
    x, y = synth_dataset(2_000, seed=4)
    cfg = EstimatorConfig(epochs=2, batch_size=64)
    seen: list[tuple[int, float]] = []
    a, ra = train_estimator(x, y, cfg, seed=7, progress=lambda e, loss: seen.append((e, loss)))
    b, rb = train_estimator(x, y, cfg, seed=7)
    c, _ = train_estimator(x, y, cfg, seed=8)
    assert weights_version(a) == weights_version(b) != weights_version(c)
    assert ra.mae_test == rb.mae_test
    assert [e for e, _ in seen] == [1, 2] and all(0 <= loss <= 1 for _, loss in seen)


def test_fast_training_step_equals_torch_adam_l1() -> None:
    """The hand-written backward + Adam is the same update as L1Loss + autograd + torch.optim.Adam."""
    x, y = synth_dataset(640, seed=5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mean, std = qe._fit_normalisation(xt)
    ref, fast = build_estimator((36, 24, 16, 16), 2), build_estimator((36, 24, 16, 16), 2)
    for m in (ref, fast):
        m.set_normalisation(mean, std)
    opt = torch.optim.Adam(ref.parameters(), lr=2e-3)
    trainer = qe._FlatAdamL1(fast, lr=2e-3)
    xn = (xt - mean) / std
    for lo in range(0, 640, 64):
        loss = torch.nn.L1Loss()(ref.raw(xt[lo : lo + 64]), yt[lo : lo + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            trainer.step(xn[lo : lo + 64], yt[lo : lo + 64])
    trainer.write_back(fast)
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_ref, atol=1e-6, rtol=1e-5)


def test_train_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="13"):
        train_estimator(np.zeros((10, 12), np.float32), np.zeros(10, np.float32), EstimatorConfig(epochs=1), 0)
    with pytest.raises(ValueError, match="targets"):
        train_estimator(np.zeros((10, 13), np.float32), np.zeros(9, np.float32), EstimatorConfig(epochs=1), 0)


def test_save_load_roundtrip(trained: tuple[QosEstimator, qe.TrainReport], tmp_path: Path) -> None:
    model, _ = trained
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

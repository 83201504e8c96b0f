"""QoS estimator training: learns a synthetic target, deterministic, the fast loop equals torch's Adam + L1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import slicing.models.qos_training as qt
from slicing.config import EstimatorConfig
from slicing.models.persist import weights_version
from slicing.models.qos_estimator import QosEstimator, build_estimator, tabulate
from slicing.models.qos_training import TrainReport, train_estimator
from tests.models.helpers import synth_dataset
from tests.synthetic import synth_z


@pytest.fixture(scope="module")
def trained() -> tuple[QosEstimator, TrainReport]:
    x, y = synth_dataset(20_000, seed=1)
    return train_estimator(x, y, EstimatorConfig(epochs=15), seed=3)


def test_training_learns_synthetic_target(trained: tuple[QosEstimator, TrainReport]) -> None:
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
    mean, std = qt._fit_normalisation(xt)
    ref, fast = build_estimator((36, 24, 16, 16), 2), build_estimator((36, 24, 16, 16), 2)
    for m in (ref, fast):
        m.set_normalisation(mean, std)
    opt = torch.optim.Adam(ref.parameters(), lr=2e-3)
    trainer = qt._FlatAdamL1(fast, lr=2e-3)
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


def test_held_out_reports_do_not_change_training():
    import numpy as np

    from slicing.config import EstimatorConfig
    from slicing.models.qos_training import train_estimator

    rng = np.random.default_rng(0)
    x = rng.random((400, 13)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.float32)
    cfg = EstimatorConfig(hidden=(8,), epochs=7, batch_size=64)
    _, plain = train_estimator(x, y, cfg, seed=3)
    seen: list[tuple[int, float]] = []
    _, reported = train_estimator(x, y, cfg, seed=3, held_out=lambda e, m: seen.append((e, m)), held_out_every=3)
    assert [e for e, _ in seen] == [3, 6, 7]
    assert seen[-1][1] == pytest.approx(reported.mae_test) and reported.mae_test == plain.mae_test


def test_a_low_quantile_gives_a_cautious_estimate() -> None:
    """The pinball loss of quantile q puts about a fraction q of the targets below f (0.5: the MAE's median)."""
    x, y = synth_dataset(8_000, seed=5)
    rng = np.random.default_rng(6)
    y = (y * rng.uniform(0.6, 1.0, len(y))).astype(np.float32)  # noisy targets: r at most the clean one
    above = {}
    for q in (0.2, 0.5):
        model, _ = train_estimator(x, y, EstimatorConfig(epochs=12, quantile=q), seed=3)
        with torch.inference_mode():
            f = model(torch.from_numpy(x)).numpy()
        above[q] = float((f > y).mean())
    assert above[0.2] < 0.32 and 0.38 < above[0.5] < 0.62, above

"""The probabilistic slice model: shapes, the Gaussian NLL, eval-mode guard, the versioned file and the payload."""

from __future__ import annotations

import math

import pytest
import torch

from slicing.models.slice_model import (
    SliceModel,
    SliceModelFileError,
    gaussian_nll,
    load_slice_model,
    save_slice_model,
    slice_model_from_payload,
    slice_model_payload,
)


def _model(seed: int = 0) -> SliceModel:
    torch.manual_seed(seed)
    model = SliceModel()
    model.train()
    model(torch.rand(64, 3) * torch.tensor([5.0, 40.0, 4000.0]))  # BatchNorm running stats away from the init
    return model.eval()


def test_qos_shapes_and_positive_sigma() -> None:
    model = _model()
    traffic = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 5.0]])
    mu, sigma = model.qos(traffic, torch.tensor([[10.0, 1000.0], [40.0, 4000.0]]))
    assert mu.shape == sigma.shape == (2, 3)
    assert (sigma > 0).all()


def test_qos_refuses_training_mode_and_wrong_shapes() -> None:
    model = _model()
    with pytest.raises(ValueError, match="r \\[I, 2\\]"):
        model.qos(torch.ones(2, 3), torch.ones(2, 3))
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        model.qos(torch.ones(2, 3), torch.ones(2, 2))


def test_gaussian_nll_is_the_normal_log_density() -> None:
    mu, sigma, q = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0]), torch.tensor([1.5, -1.0])
    expected = -torch.distributions.Normal(mu, sigma).log_prob(q).mean()
    assert gaussian_nll(mu, sigma, q).item() == pytest.approx(expected.item(), rel=1e-6)
    assert gaussian_nll(torch.zeros(1), torch.ones(1), torch.zeros(1)).item() == pytest.approx(
        0.5 * math.log(2 * math.pi))


def test_file_round_trip_keeps_outputs_and_version(tmp_path) -> None:
    model = _model(1)
    version = save_slice_model(model, tmp_path / "m.pt")
    loaded = load_slice_model(tmp_path / "m.pt")
    assert loaded.version == version and not loaded.training
    x, r = torch.full((1, 4), 3.0), torch.tensor([[20.0, 2500.0]])
    assert torch.equal(model.qos(x, r)[0], loaded.qos(x, r)[0])
    other = save_slice_model(_model(2), tmp_path / "n.pt")
    assert other != version  # a content hash: other weights, other version


def test_bad_files_are_refused_with_the_path(tmp_path) -> None:
    with pytest.raises(SliceModelFileError):
        load_slice_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(SliceModelFileError, match="bad.pt"):
        load_slice_model(bad)


def test_payload_round_trip() -> None:
    model = _model(3)
    save = slice_model_payload(model)
    back = slice_model_from_payload(save)
    x, r = torch.full((2, 3), 2.0), torch.tensor([[10.0, 1500.0], [30.0, 3500.0]])
    assert torch.allclose(model.qos(x, r)[1], back.qos(x, r)[1])
    with pytest.raises(ValueError):
        slice_model_from_payload({"format": "something else"})

"""The one model file format: old files load, format tags and versions are checked, errors name file and problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from slicing.models import qos_estimator, vae
from slicing.models.persist import ModelFileError, state_mismatch, weights_version
from slicing.models.qos_estimator import EstimatorFileError, load_estimator, save_estimator
from slicing.models.vae import Vae, VaeFileError, load_vae, save_vae
from tests.models.helpers import random_model


def small_vae(seed: int = 0) -> Vae:
    torch.manual_seed(seed)
    model = Vae(7, (8, 6), 3)
    model.set_normalisation(torch.arange(7.0), torch.full((7,), 2.0))
    return model.eval()


def test_weights_version_is_sha256_of_names_shapes_and_bytes() -> None:
    model = random_model(seed=4)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        arr = tensor.numpy().astype(np.float32)
        digest.update(name.encode() + str(arr.shape).encode() + arr.tobytes())
    assert weights_version(model) == digest.hexdigest()[:12]


def test_files_written_by_the_previous_code_still_load(tmp_path: Path) -> None:
    """The on-disk keys did not change: a dict laid out as before (built here by hand) loads in both formats."""
    model = random_model(seed=6)
    old = {"format": "slicing.qos_estimator/1", "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
           "hidden": list(model.hidden), "in_dim": 13, "feat_mean": model.feat_mean.clone(),
           "feat_std": model.feat_std.clone(), "version": weights_version(model)}
    torch.save(old, tmp_path / "old.pt")
    loaded = load_estimator(tmp_path / "old.pt")
    assert loaded.version == weights_version(model)
    x = torch.rand(50, 13)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    v = small_vae()
    torch.save({"format": "slicing.vae/1", "state_dict": dict(v.state_dict()), "in_dim": 7, "hidden": [8, 6],
                "latent_dim": 3, "version": weights_version(v)}, tmp_path / "old_vae.pt")
    back = load_vae(tmp_path / "old_vae.pt")
    assert back.version == weights_version(v) and torch.equal(back.encode(x[:, :7])[0], v.encode(x[:, :7])[0])


def test_save_writes_the_documented_keys_atomically(tmp_path: Path) -> None:
    version = save_estimator(random_model(), tmp_path / "sub" / "e.pt")
    stored = torch.load(tmp_path / "sub" / "e.pt", weights_only=True)
    assert set(stored) == {"format", "state_dict", "hidden", "in_dim", "feat_mean", "feat_std", "version"}
    assert stored["format"] == qos_estimator.FILE_FORMAT and stored["version"] == version
    assert save_vae(small_vae(), tmp_path / "v.pt") == weights_version(small_vae())
    assert set(torch.load(tmp_path / "v.pt", weights_only=True)) == {"format", "state_dict", "in_dim", "hidden",
                                                                     "latent_dim", "version"}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["e.pt", "v.pt"]  # no .tmp left


def test_format_tags_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "e.pt"
    save_estimator(random_model(), path)
    stored = torch.load(path, weights_only=True)
    torch.save({**stored, "format": vae.FILE_FORMAT}, path)
    with pytest.raises(EstimatorFileError, match=f"estimator file {path}: format 'slicing.vae/1', expected"):
        load_estimator(path)
    save_vae(small_vae(), path)
    with pytest.raises(EstimatorFileError, match=r"missing keys \['feat_mean', 'feat_std'\]"):
        load_estimator(path)
    save_estimator(random_model(), path)
    with pytest.raises(VaeFileError, match=f"VAE file {path}: missing keys"):
        load_vae(path)


@pytest.mark.parametrize(("load", "error", "label"), [(load_estimator, EstimatorFileError, "estimator"),
                                                      (load_vae, VaeFileError, "VAE")])
def test_read_errors_are_shared(tmp_path: Path, load, error: type[ModelFileError], label: str) -> None:
    assert issubclass(error, ModelFileError) and issubclass(error, ValueError)
    with pytest.raises(error, match=f"{label} file {tmp_path / 'nope.pt'} does not exist"):
        load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(error, match="is not a readable torch file"):
        load(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "d.pt")
    with pytest.raises(error, match="missing keys"):
        load(tmp_path / "d.pt")


def test_vae_version_and_shape_checks(tmp_path: Path) -> None:
    path = tmp_path / "v.pt"
    save_vae(small_vae(), path)
    stored = torch.load(path, weights_only=True)
    state = {**stored["state_dict"], "decoder.4.bias": stored["state_dict"]["decoder.4.bias"] + 1}
    torch.save({**stored, "state_dict": state}, path)
    with pytest.raises(VaeFileError, match="stored version .* does not match its weights"):
        load_vae(path)
    torch.save({**stored, "latent_dim": 4}, path)
    with pytest.raises(VaeFileError, match="weights do not match in_dim=7"):
        load_vae(path)
    torch.save({**stored, "hidden": [8]}, path)
    with pytest.raises(VaeFileError, match="invalid hidden sizes"):
        load_vae(path)


def test_state_mismatch_describes_the_difference() -> None:
    model = random_model()
    state = dict(model.state_dict())
    assert state_mismatch(model, state) == ""
    assert state_mismatch(model, [1]) == "state_dict is a list, not a dict"
    assert "missing ['out.bias']" in state_mismatch(model, {k: v for k, v in state.items() if k != "out.bias"})
    assert "has shape (2,), expected (1,)" in state_mismatch(model, {**state, "out.bias": torch.zeros(2)})
    assert "out.bias is a float, not a tensor" in state_mismatch(model, {**state, "out.bias": 0.5})

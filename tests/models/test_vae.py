"""The general VAE of the transfer ranking (slicing/models/vae.py): seeded training, persistence, file errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slicing.models.vae import VaeFileError, load_vae, save_vae, train_vae, weights_version
from tests.models.helpers import SMALL_VAE as SMALL
from tests.models.helpers import clusters


def test_vae_trains_deterministically_and_restores_threads():
    rng = np.random.default_rng(0)  # 2-D structure in 21 columns: a 4-D latent can reconstruct it
    data = (rng.normal(size=(400, 2)) @ rng.normal(size=(2, 21)) + 0.05 * rng.normal(size=(400, 21))).astype(np.float32)
    threads = torch.get_num_threads()
    vae, rep = train_vae(data, SMALL, seed=5)
    assert torch.get_num_threads() == threads
    assert len(rep.losses) == SMALL.epochs and rep.samples == 400
    assert rep.losses[-1] < 0.5 * rep.losses[0], rep.losses
    assert rep.recon < 0.25 * 21  # well below predicting the mean of the 21 standardised columns
    again, rep2 = train_vae(data, SMALL, seed=5)
    assert rep2.losses == rep.losses and weights_version(again) == weights_version(vae)
    mu, logvar = vae.encode(data[:7])
    assert mu.shape == logvar.shape == (7, SMALL.latent_dim)
    with pytest.raises(ValueError, match=r"\[n, 21\]"):
        vae.encode(data[:3, :20])


def test_vae_save_load_round_trip_and_file_errors(tmp_path: Path):
    data = np.concatenate(list(clusters(100, {"a": 0.0, "b": 3.0}, seed=1).values()))
    vae, _ = train_vae(data, SMALL.model_copy(update={"epochs": 3}), seed=0)
    version = save_vae(vae, tmp_path / "vae.pt")
    loaded = load_vae(tmp_path / "vae.pt")
    assert loaded.version == version == vae.version and len(version) == 12
    with torch.inference_mode():
        for got, want in zip(loaded.encode(data), vae.encode(data), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    payload = torch.load(tmp_path / "vae.pt", weights_only=True)
    payload["state_dict"]["feat_mean"] = payload["state_dict"]["feat_mean"] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(VaeFileError, match="does not match its weights"):
        load_vae(tmp_path / "tampered.pt")
    payload["latent_dim"] = 5
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(VaeFileError, match="weights do not match"):
        load_vae(tmp_path / "shape.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(VaeFileError, match="not a readable torch file"):
        load_vae(tmp_path / "junk.pt")
    with pytest.raises(VaeFileError, match="does not exist"):
        load_vae(tmp_path / "missing.pt")

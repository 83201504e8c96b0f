"""Transfer learning between cell agents (TL-aided MADRL paper, section IV-B/IV-C), pure numpy/torch (no Ray).

- ``samples``: the containers of (state, reward) samples of a cell group under the default action (equal shares);
  they are collected by stepping the RLlib env in ``slicing/rl/transfer_samples.py``;
- ``ranking``: latent posteriors of those samples under one general VAE (``slicing/models/vae.py``), the
  inter-agent distance (paper's Lemma 1, or the closed-form Gaussian KL) and the ranking of source candidates.

The transfer strategies themselves (model, instance, integrated, feature) train RLlib SAC: ``slicing/rl/transfer.py``.
"""

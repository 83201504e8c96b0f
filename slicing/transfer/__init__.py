"""Transfer learning between cell agents (TL-aided MADRL paper, section IV-B/IV-C).

- ``samples``: (state, reward) samples of a cell group under the default action (equal shares);
- ``ranking``: latent posteriors of those samples under one general VAE (``slicing/models/vae.py``), the
  inter-agent distance (paper's Lemma 1, or the closed-form Gaussian KL) and the ranking of source candidates.

``samples`` steps ``CellSlicingEnv`` (an RLlib ``MultiAgentEnv``), so this package imports Ray/RLlib modules;
``ranking`` itself needs only numpy and torch.
"""

"""Torch modules and their files; imports no Ray.

- ``qos_estimator``: IDLA's QoS estimator f(x, z) (MLP, clamped linear output), its tabulation on a share grid
  and its object-store payload; ``qos_training``: the MAE training loop and its optimiser.
- ``vae``: the VAE of the transfer ranking; ``violation``: the safe-DRL violation predictor.
- ``persist``: the one versioned torch file format (format tag, content-hash version, checked keys and shapes).
"""

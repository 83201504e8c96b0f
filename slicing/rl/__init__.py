"""RLlib layer: the multi-agent slicing env (one agent per cell), typed settings, training, batched inference and
the ``rl`` scheme, the DRL baseline, and the RLlib parts of transfer, safety and imitation.

Modules here may import Ray/RLlib and everything below (transfer, optim, models, data, sim); ``settings`` imports
neither Ray nor torch, so the CLI builds its options from it cheaply. Library code here never starts Ray: the
entry points do (``slicing/runtime/ray_util.py``).
"""

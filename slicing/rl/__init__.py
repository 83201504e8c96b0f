"""RLlib layer: multi-agent slicing env (one agent per cell), training, and batched population inference.

Modules here may import Ray/RLlib (``features`` does not: it is shared with the runtime's ``rl`` scheme).
"""

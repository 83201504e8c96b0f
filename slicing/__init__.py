"""slicing: per-cell radio resource partitioning among network slices, from a simulator to a Ray service.

Layers (dependencies point down): runtime -> rl -> transfer -> optim -> models -> data -> sim, with config at the
side. See DESIGN in README.md.
"""

__version__ = "0.1.0"

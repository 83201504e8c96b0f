"""slicing: per-cell radio resource partitioning among network slices, from a simulator to a Ray service.

Layers (dependencies point down; ``pyproject.toml`` declares them as import-linter contracts, run by ``make test``):
cli > bench > serve | experiments | sweeps > runtime > rl > transfer | optim > models > data > sim >
config | rng | errors | threads. sim, data, models, optim and transfer import no Ray. README.md, "Layout", says
what each package holds and why.
"""

__version__ = "0.1.0"

"""slicing: per-cell radio resource partitioning among network slices, from a simulator to a Ray service.

Layers (dependencies point down; ``pyproject.toml`` declares them as import-linter contracts, run by ``make test``):
cli > bench > serve | experiments | sweeps > runtime > rl > transfer | optim > models > data > sim >
config | rng | errors | threads. sim, data, models, optim and transfer import no Ray. README.md, "Layout", says
what each package holds and why.
"""

import os

# Intel MKL's strict conditional numerical reproducibility: a matrix product's rows do not depend on how many
# threads computed them or on how the batch was split. Without it, on an AVX-512 Xeon with 2 threads, IDLA's shares of
# a cell differed in the 8th digit between a 50-cell and a 100-cell batch, and the sharded population was no longer
# bit-identical to one process. Read by MKL on its first call; an operator's own MKL_CBWR wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

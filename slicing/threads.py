"""``single_torch_thread()``: torch limited to one intra-op thread for a block, restored afterwards.

Every training loop here runs small MLPs on small batches (the QoS estimator, the VAE, RLlib learners on a local
env runner, the safety predictor). On a shared 2-core machine torch's default pool spins against the other busy
core: measured 54 s vs > 10 min for the estimator's 200 epochs, and 5 s vs 33 s per RLlib iteration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""An RLlib algorithm's learner module weights as numpy: read them, write them by key, sync them to the env runners.

Transfer (``slicing/rl/transfer.py``: a source agent's weights into a target) and imitation
(``slicing/rl/imitation.py``: BC's policy into PPO/SAC) both copy weights into a learner's RLModule; this is the one
place that does it. The learner may be local or a Ray actor (``foreach_learner``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def on_learner(algo: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn(learner)`` on the (first) learner of ``algo``; its errors are raised here."""
    return next(iter(algo.learner_group.foreach_learner(fn))).get()


def module_state(algo: Any, mid: str) -> dict[str, np.ndarray]:
    """The learner's RLModule ``mid`` as a numpy state dict."""
    def get(learner: Any) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in learner.module[mid].state_dict().items()}

    return on_learner(algo, get)


def load_weights(algo: Any, state: Mapping[str, Any], keys: Mapping[str, str], mid: str, what: str,
                 hint: str) -> None:
    """Copy ``state[src]`` into the learner module's ``dst`` for every ``src -> dst`` of ``keys``, then sync the
    env runners. A shape mismatch raises ``ValueError`` naming ``what`` (the operation), both shapes and ``hint``."""
    def copy(learner: Any) -> None:
        import torch

        module = learner.module[mid]
        target = module.state_dict()
        for src, dst in keys.items():
            if tuple(target[dst].shape) != tuple(np.shape(state[src])):
                raise ValueError(f"{what}: {dst} has shape {tuple(target[dst].shape)} in the target but "
                                 f"{tuple(np.shape(state[src]))} in the source ({src}); {hint}")
            target[dst] = torch.as_tensor(state[src], dtype=target[dst].dtype)
        module.load_state_dict(target)

    on_learner(algo, copy)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)

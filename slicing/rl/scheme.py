"""The ``rl`` allocation scheme: a trained RLlib policy behind ``slicing.optim.schemes``' interface.

Importing this module registers ``rl`` in ``slicing.optim.schemes.SCHEMES`` (the registry below knows no RL). It
is imported where the scheme is needed: the runtime's ``CellShard(scheme="rl")``, the HTTP service, the tests.
Loading a checkpoint imports RLlib (``RlPolicy.from_checkpoint``); importing this module does not.
"""

from __future__ import annotations

import numpy as np

from slicing.config import IdlaConfig
from slicing.optim.schemes import AllocationContext, UnknownSchemeError, register_scheme

NAME = "rl"


class RlScheme:
    """A trained RLlib policy (``slicing.rl.inference.RlPolicy``) on per-cell observations built by the caller.

    The caller fills ``ctx.obs`` with ``slicing.data.features`` from its last KPI report.
    """

    name, needs_model, needs_obs = NAME, False, True

    def __init__(self, policy) -> None:
        self.policy = policy
        self.version = getattr(policy, "version", None)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        if ctx.obs is None:
            raise ValueError("rl scheme needs obs (per-cell observations from the last KPI report)")
        return self.policy.allocate(ctx.obs, ctx.mask)


def make_rl_scheme(*, model: object = None, idla: IdlaConfig | None = None, seed: int = 0,
                   checkpoint: str | None = None) -> RlScheme:
    """The registry's factory: the policy of ``checkpoint`` (an ``UnknownSchemeError`` without one)."""
    if checkpoint is None:
        raise UnknownSchemeError("scheme 'rl' needs an RL checkpoint (slicing train-rl); it runs in the runtime's "
                                 "CellShard(scheme='rl', rl_checkpoint=...)")
    from slicing.rl.inference import RlPolicy  # RLlib is imported when a checkpoint is loaded

    return RlScheme(RlPolicy.from_checkpoint(checkpoint))


register_scheme(NAME, make_rl_scheme)

"""The replica's side of the transfer service (the ``slicing-transfer`` actor): ``GET /v1/agents`` and
``POST /v1/transfer``.

Not running: 503 + ``Retry-After``; slow: 503 + ``Retry-After`` after the timeout (the population timeout for the
registry, at least 300 s for a transfer, whose ranking fits a VAE). The actor's bad-input errors are
``TransferError``s, ``FieldError``s with the path of the request field (``("source",)``); they arrive as themselves
(``slicing.runtime.ray_util.unwrap``) and ``serve_app.py`` answers 422 with ``body.source``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slicing.errors import FieldError
from slicing.runtime.ray_util import unwrap
from slicing.serve.errors import unavailable
from slicing.serve.models import TransferRequest
from slicing.serve.settings import ServiceSettings

TRANSFER_MIN_TIMEOUT_S = 300.0  # POST /v1/transfer waits for the ranking (samples + a general VAE) at least this


class TransferClient:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    async def _call(self, actor_method: str, timeout_s: float, **kwargs: Any) -> Any:
        import ray

        from slicing.runtime.transfer_actor import get_transfer_actor

        retry = self.settings.retry_after_s
        try:
            actor = get_transfer_actor()
        except Exception:  # not started
            raise unavailable("transfer service not running (start it with `slicing transfer` or "
                              "slicing.runtime.transfer_actor.start_transfer_actor)", retry) from None
        ref = getattr(actor, actor_method).remote(**kwargs)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
        except TimeoutError:
            raise unavailable(f"transfer service did not answer {actor_method} within {timeout_s:g} s",
                              retry) from None
        except ray.exceptions.RayActorError:
            raise unavailable("transfer service unavailable", retry) from None
        except Exception as err:
            cause = unwrap(err, ValueError)
            if isinstance(cause, FieldError):
                raise cause from None
            if cause is not err:  # a refusal that names no field: about the request as a whole
                raise FieldError((), str(cause)) from None
            raise

    async def agents(self) -> dict:
        return {"agents": await self._call("agents", self.settings.population_timeout_s)}

    async def transfer(self, body: TransferRequest) -> dict:
        """Start a transfer in the background: the ranking and the new agent's record (status ``training``)."""
        return await self._call(
            "transfer", max(self.settings.population_timeout_s, TRANSFER_MIN_TIMEOUT_S), target=body.target,
            cells=body.cells, source=body.source, strategy=body.strategy, iterations=body.iterations,
            method=body.method, wait=False)

"""The replica's side of the transfer service (slicing/serve/transfer_client.py), against the real
``slicing-transfer`` actor with an empty registry: its refusals arrive as FieldErrors naming the request field."""

from __future__ import annotations

import asyncio

import pytest

from slicing.errors import FieldError
from slicing.serve.errors import ServiceError
from slicing.serve.models import TransferRequest
from slicing.serve.settings import ServiceSettings
from slicing.serve.transfer_client import TransferClient

CLIENT = TransferClient(ServiceSettings(retry_after_s=3, population_timeout_s=30))


def test_not_running_is_503(ray_session) -> None:
    from slicing.runtime.transfer_actor import stop_transfer_actor

    stop_transfer_actor()
    with pytest.raises(ServiceError) as err:
        asyncio.run(CLIENT.agents())
    assert err.value.status == 503 and err.value.headers == {"Retry-After": "3"}
    assert "transfer service not running" in err.value.detail


@pytest.fixture(scope="module")
def actor(ray_session, idla_scenario, tmp_path_factory):
    from slicing.runtime.transfer_actor import start_transfer_actor, stop_transfer_actor

    handle = start_transfer_actor(idla_scenario, tmp_path_factory.mktemp("registry"), episodes=1, episode_len=8)
    yield {"handle": handle, "cells": idla_scenario.cells}
    stop_transfer_actor()


def test_agents_of_an_empty_registry(actor) -> None:
    assert asyncio.run(CLIENT.agents()) == {"agents": []}


@pytest.mark.parametrize(("change", "path", "message"), [
    ({"cells": [0, 10**6]}, ("cells",), "ids [1000000] outside [0, {n})"),
    ({}, ("source",), "no trained agent is registered to transfer from"),
    ({"source": "nobody"}, ("source",), "no trained agent is registered to transfer from"),
])
def test_transfer_refusals_name_the_field(actor, change: dict, path: tuple, message: str) -> None:
    body = TransferRequest.model_validate({"target": "T", "cells": [0, 1, 2], "strategy": "model"} | change)
    with pytest.raises(FieldError) as err:
        asyncio.run(CLIENT.transfer(body))
    assert err.value.path == path and err.value.message == message.format(n=actor["cells"])
    assert err.value.detail("body")["path"] == "body." + ".".join(path)


def test_a_rule_the_http_model_does_not_check_is_still_a_field_error(actor) -> None:
    """The actor checks its arguments itself (the CLI reaches it without the HTTP model)."""
    with pytest.raises(FieldError) as err:
        asyncio.run(CLIENT._call("transfer", 30, target="T", cells=[0], strategy="magic"))
    assert err.value.path == ("strategy",) and str(err.value).startswith("strategy: 'magic'; choose from")

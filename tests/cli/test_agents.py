"""`slicing agents list|register` and `slicing transfer` (slicing/cli/agents.py): a strategy or distance method
outside the registries exits 2 naming the flag, before the transfer service (and Ray) is started. The service
itself is tested in tests/runtime/."""

from __future__ import annotations

import pytest

import slicing.cli.agents as agents
from slicing.cli import app
from slicing.rl.settings import STRATEGIES
from slicing.transfer.ranking import METHODS
from tests.cli.helpers import runner


@pytest.fixture
def no_service(monkeypatch) -> list:
    """Calls that would start the transfer service (they fail the test's expectation if any happen)."""
    calls: list = []
    monkeypatch.setattr(agents, "_transfer_service", lambda *a, **k: calls.append(a))
    return calls


@pytest.mark.parametrize(("args", "needle"), [
    (["--strategy", "copy"], f"--strategy 'copy': choose from {list(STRATEGIES)}"),
    (["--method", "cosine"], f"--method 'cosine': choose from {list(METHODS)}"),
    (["--iterations", "0"], "Invalid value for '--iterations'"),
])
def test_transfer_rejects_unknown_strategy_and_method(no_service, args, needle):
    res = runner.invoke(app, ["transfer", "--target", "12-14", *args])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output
    assert no_service == []


def test_register_needs_checkpoint_and_cells(no_service):
    res = runner.invoke(app, ["agents", "register", "A", "--cells", "0-5"])
    assert res.exit_code == 2 and "--checkpoint" in res.output and no_service == []

"""Fixtures of the experiment tests: ``figures`` keeps the figures a plot function closes, to inspect them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch) -> list:
    """The figures passed to ``plt.close`` while the test runs (closed for real at teardown)."""
    kept: list = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    for fig in kept:
        close(fig)

"""The `slicing` command: one thin module per command group, reading top to bottom and calling the library.

Shared behaviour lives in ``slicing/cli/common.py``: --scenario/--set loading, bad input turned into one clear
line on stderr and exit code 2, progress bars on stderr, and ``--json`` printing one JSON object as the last line
of stdout. Tables are in ``slicing/cli/tables.py``.
"""

from __future__ import annotations

from slicing.cli import (  # noqa: F401 - register commands
    agents,
    bench,
    data,
    evaluate,
    experiment,
    models,
    reproduce,
    rl,
    serve,
    tune,
    whatif,
)
from slicing.cli.app import agents_app, app, bench_app, experiment_app, models_app

app.add_typer(bench_app, name="bench")
app.add_typer(experiment_app, name="experiment")
app.add_typer(agents_app, name="agents")
app.add_typer(models_app, name="models")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

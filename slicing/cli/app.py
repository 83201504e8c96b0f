"""The Typer applications of the `slicing` command; command modules register on them, and
``slicing/cli/__init__.py`` mounts the groups (bench, experiment, agents, models) once all commands are registered."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The `slicing` command. Each subcommand reads top to bottom and calls the library.")
bench_app = typer.Typer(add_completion=False, invoke_without_command=True,
                        help="Benchmarks: `slicing bench --cells N` times one simulator period and one IDLA "
                             "allocation in one process.")
experiment_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="Reproduce a paper's experiment: one command each, a figure and a JSON line.")

agents_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The transfer service's registry of trained cell agents (list, register).")
models_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Roll a QoS estimator out to a running service and back (push, list, activate).")

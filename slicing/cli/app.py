"""The Typer applications of the `slicing` command; command modules register on them."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The `slicing` command. Each subcommand reads top to bottom and calls the library.")
bench_app = typer.Typer(add_completion=False, invoke_without_command=True,
                        help="Benchmarks: `slicing bench --cells N` times one simulator period and one IDLA "
                             "allocation in one process.")
app.add_typer(bench_app, name="bench")
experiment_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="Reproduce a paper's experiment: one command each, a figure and a JSON line.")
app.add_typer(experiment_app, name="experiment")

agents_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The transfer service's registry of trained cell agents (list, register, remove).")

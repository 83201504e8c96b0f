"""The `slicing` command tree (slicing/cli/app.py, assembled in slicing/cli/__init__.py): exactly the documented
commands (docs/commands.md), each with a help line."""

from __future__ import annotations

import typer

from slicing.cli import app

DOCUMENTED = {
    "collect": None, "train-estimator": None, "evaluate": None,
    "bench": {"rl", "microopt", "serve", "export", "overload", "chaos"},
    "train-rl": None, "demo": None, "tune": None, "experiment": {"safety", "imitation", "transfer", "microopt", "twin"},
    "agents": {"list", "register"}, "models": {"push", "list", "activate"},
    "transfer": None, "serve": None, "reproduce": None, "whatif": None,
}


def test_the_registered_commands_are_exactly_the_documented_ones():
    root = typer.main.get_command(app)
    assert set(root.commands) == set(DOCUMENTED)
    for name, subcommands in DOCUMENTED.items():
        command = root.commands[name]
        assert set(getattr(command, "commands", {}) or {}) == (subcommands or set()), name


def test_every_command_has_a_help_line():
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        assert (command.help or "").strip(), name
        for sub, leaf in getattr(command, "commands", {}).items():
            assert (leaf.help or "").strip(), f"{name} {sub}"


def test_importing_the_cli_loads_neither_torch_nor_ray():
    """`slicing --help` stays quick: the commands import torch, Ray and RLlib only when they run."""
    import subprocess
    import sys

    code = "import sys, slicing.cli; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout

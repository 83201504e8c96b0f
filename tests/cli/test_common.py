"""Shared flags and runners of the `slicing` command (slicing/cli/common.py): options generated from a settings
model (its defaults, help and bounds), a bad value naming the flag with exit code 2, and the default scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import typer
from pydantic import Field, model_validator
from typer.testing import CliRunner

from slicing.cli.common import Flag, ModelOptions, ScenarioOpt, SetOpt, guarded, load_or_default, options_from
from slicing.config import Strict
from slicing.errors import FieldError


class Demo(Strict):
    count: int = Field(default=3, ge=1, le=9, description="how many rounds")
    mode: Literal["a", "b"] = Field(default="a", description="the mode")
    names: tuple[str, ...] = Field(default=("x", "y"), description="comma-separated names")
    loud: bool = Field(default=False, description="shout")
    width: int | None = Field(default=None, ge=0, description="the width")
    seed: int = Field(default=0, description="seed (from the scenario, not a flag)")

    @model_validator(mode="after")
    def _rule(self) -> Demo:
        if self.mode == "b" and self.count > 5:
            raise FieldError(("count",), "must be <= 5 in mode b")
        return self


app = typer.Typer(add_completion=False)


@app.command()
@guarded
@options_from(Demo, {"count": "--count", "mode": "--mode", "names": "--names", "loud": "--loud",
                     "width": Flag("--cols", min=2, help="columns of the output")})
def run(scenario: ScenarioOpt = None, overrides: SetOpt = None, tag: str = typer.Option("t", "--tag"), *,
        options: ModelOptions) -> None:
    if options.values["names"] == ("boom",):
        raise FieldError(("names", 0), "boom is not a name")
    print(json.dumps(options.build(seed=7).model_dump() | {"tag": tag}))


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_options_carry_the_models_defaults_help_and_bounds():
    params = {p.name: p for p in typer.main.get_command(app).params}
    # the generated options sit after --scenario/--set and before the command's own --tag
    assert list(params) == ["scenario", "overrides", "opt_count", "opt_mode", "opt_names", "opt_loud", "opt_width",
                            "tag"]
    count, mode, names, loud, width = (params[f"opt_{f}"] for f in ("count", "mode", "names", "loud", "width"))
    assert count.opts == ["--count"] and count.default == 3 and count.help == "how many rounds"
    assert (count.min, count.max) == (1, 9)  # the field's ge/le
    assert mode.default == "a" and mode.help == "the mode"
    assert names.default == "x,y"  # a tuple of strings is one comma-separated value
    assert loud.opts == ["--loud"] and loud.secondary_opts == ["--no-loud"] and loud.default is False
    assert width.opts == ["--cols"] and width.help == "columns of the output" and width.min == 2  # Flag wins
    assert "seed" not in params and "opt_seed" not in params


def test_values_are_validated_into_the_model():
    res = _invoke()
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {**Demo(seed=7).model_dump(mode="json"), "tag": "t"}
    res = _invoke("--count", "4", "--mode", "b", "--names", " p, q ,", "--loud", "--cols", "5", "--tag", "u")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"count": 4, "mode": "b", "names": ["p", "q"], "loud": True, "width": 5,
                                      "seed": 7, "tag": "u"}


@pytest.mark.parametrize(("args", "needle"), [
    (["--mode", "c"], "--mode 'c': Input should be 'a' or 'b'"),
    (["--mode", "b", "--count", "6"], "--count 6: must be <= 5 in mode b"),  # a cross-field rule, by its path
    (["--count", "0"], "Invalid value for '--count'"),  # the model's bound, checked by the option
    (["--cols", "1"], "Invalid value for '--cols'"),
    (["--names", "boom"], "error: names.0: boom is not a name"),  # guarded: a FieldError is one line
])
def test_a_bad_value_names_the_flag_and_exits_2(args, needle):
    res = _invoke(*args)
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()) and "Traceback" not in res.output


def test_load_or_default_takes_the_file_else_the_idla_scenario_with_the_commands_defaults(monkeypatch, tmp_path):
    given = load_or_default(Path("scenarios/idla.yaml"), ["steps=300"], ["topology.sites=5"])
    assert given.name == "idla" and given.steps == 300 and given.cells == 12  # defaults apply only without a file
    sc = load_or_default(None, ["topology.sites=7"], ["topology.sites=5", "steps=300"])
    assert sc.name == "idla" and sc.steps == 300 and sc.cells == 21  # the user's --set wins over the defaults
    monkeypatch.chdir(tmp_path)  # outside a clone: the built-in defaults
    outside = load_or_default(None, None, ["steps=300"])
    assert outside.name == "scenario" and outside.steps == 300

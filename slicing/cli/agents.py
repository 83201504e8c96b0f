"""`slicing agents list|register` and `slicing transfer`: the transfer service (paper 002) from the shell."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import agents_app, app
from slicing.cli.common import (
    JsonOpt,
    ScenarioOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    load,
)
from slicing.rl.settings import STRATEGIES

# ----------------------------------------------------------------------------- transfer service (paper 002)

RegistryOpt = typer.Option(Path("out/agents"), "--registry", help="registry folder of the transfer service")


def _transfer_service(scenario: Path | None, overrides: list[str] | None, registry: Path, **kwargs):
    """The TransferService actor on local Ray, over the registry folder (created if missing)."""
    from slicing.runtime.ray_util import ensure_ray
    from slicing.runtime.transfer_actor import start_transfer_actor

    sc = load(scenario, overrides)
    ensure_ray()
    return start_transfer_actor(sc, registry, **kwargs)


def _remote(ref):
    """ray.get that lets the service's TransferError (a FieldError) through as itself: the CLI's one-line error
    (exit 2)."""
    import ray

    from slicing.errors import FieldError
    from slicing.runtime.ray_util import unwrap

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = unwrap(err, ValueError)
        if isinstance(cause, FieldError):
            raise cause from None
        if cause is not err:
            raise FieldError((), str(cause)) from None
        raise


@agents_app.command("list")
@guarded
def agents_list(scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
                json_out: JsonOpt = False) -> None:
    """List the registered agents (name, status, cells, source, strategy, rewards)."""
    handle = _transfer_service(scenario, overrides, registry)
    agents = _remote(handle.agents.remote())
    for a in agents:
        origin = f"  from {a['source']} ({a['strategy']}, distance {a['distance']:.4g})" if a["source"] else ""
        console.print(f"{a['name']:<20} {a['status']:<9} cells {_span(a['cells'])}" + origin)
    if not agents:
        console.print(f"no agents registered in {registry}")
    emit_json(json_out, {"agents": agents})


def _span(cells: list[int]) -> str:
    return f"{cells[0]}-{cells[-1]} ({len(cells)})" if len(cells) > 1 else str(cells[0])


@agents_app.command("register")
@guarded
def agents_register(
    name: str = typer.Argument(..., help="agent name (letters, digits, _ . -)"),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="its RLlib checkpoint (slicing train-rl --out X: "
                                                            "X/checkpoint)"),
    cells: str = typer.Option(..., "--cells", help="its cells: ids and ranges, e.g. 0-5,9"),
    transitions: Path | None = typer.Option(None, "--transitions", help="its transitions (.npz) for instance "
                                                                         "transfer"),
    scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
    replace: bool = typer.Option(False, "--replace", help="overwrite an agent of the same name"),
    json_out: JsonOpt = False,
) -> None:
    """Register a trained agent as a transfer source (collects its default-action samples)."""
    handle = _transfer_service(scenario, overrides, registry)
    rec = _remote(handle.register.remote(name, cells, str(checkpoint),
                                         None if transitions is None else str(transitions), replace))
    console.print(f"registered {rec['name']}: cells {_span(rec['cells'])}, {rec['samples']['count']} samples")
    emit_json(json_out, rec)


@app.command()
@guarded
def transfer(
    target: str = typer.Option(..., "--target", help="the target's cells: ids and ranges, e.g. 12-17"),
    name: str | None = typer.Option(None, "--name", help="name of the new agent (default: target-<cells>)"),
    source: str | None = typer.Option(None, "--source", help="source agent (default: the nearest in the VAE "
                                                             "latent space)"),
    strategy: str = typer.Option("integrated", help="model | instance | integrated | feature"),
    iterations: int = typer.Option(10, min=1, help="RLlib training iterations of the target"),
    method: str = typer.Option("mean", help="latent distance: mean (Lemma 1) | kl"),
    rank_only: bool = typer.Option(False, "--rank-only", help="print the ranking, do not train"),
    scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
    json_out: JsonOpt = False,
) -> None:
    """Rank the registered agents by latent distance to TARGET and train a new agent by transfer from one."""
    from slicing.transfer.ranking import METHODS  # imports torch: only when the command runs

    # the actor checks these too; checking here against the same registries fails before Ray starts
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"--strategy {strategy!r}: choose from {list(STRATEGIES)}")
    if method not in METHODS:
        raise typer.BadParameter(f"--method {method!r}: choose from {list(METHODS)}")
    agent = name or "target-" + target.replace(",", "_")
    handle = _transfer_service(scenario, overrides, registry)
    if rank_only:
        ranking = _remote(handle.rank_sources.remote(agent, target, method))
        _print_ranking(ranking)
        emit_json(json_out, {"target": agent, "ranking": ranking})
        return
    console.print(f"transfer to {agent} ({strategy}, {iterations} iterations) ...")
    out = _remote(handle.transfer.remote(agent, target, source, strategy, iterations, method, True))
    _print_ranking(out["ranking"])
    rec = out["agent"]
    if rec["status"] != "ready":
        console.print(f"[bold red]error:[/bold red] transfer failed: {rec['error']}")
        raise typer.Exit(code=1)
    console.print(f"{agent}: from {out['source']} ({strategy}); early reward {rec['early_reward']:.4f}, final "
                  f"{rec['final_reward']:.4f}; checkpoint {rec['checkpoint']}")
    emit_json(json_out, {"target": agent, "source": out["source"], "strategy": strategy,
                         "iterations": out["iterations"], "ranking": out["ranking"],
                         "early_reward": rec["early_reward"], "final_reward": rec["final_reward"],
                         "checkpoint": rec["checkpoint"]})


def _print_ranking(ranking: list[dict]) -> None:
    for k, r in enumerate(ranking, 1):
        console.print(f"  {k}. {r['source']:<20} distance {r['distance']:.5g}")

"""`slicing bench` (core, --shards), `slicing bench rl`, `slicing bench microopt`, `slicing bench serve`,
`slicing bench export`."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import bench_app
from slicing.cli.common import (
    JsonOpt,
    console,
    emit_json,
    guarded,
)


@bench_app.callback()
@guarded
def bench(
    ctx: typer.Context,
    cells: int = typer.Option(20_000, min=3, max=3_000_000, help="population size (rounded up to whole sites)"),
    seed: int = typer.Option(0, min=0, help="seed of the benchmark scenario"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    shards: int | None = typer.Option(None, min=1, help="run whole periods on K Ray shard actors instead "
                                                        "(slicing/bench/population.py)"),
    periods: int = typer.Option(8, min=1, max=96, help="with --shards: timed IDLA periods (medians reported, and the "
                                                        "first and slowest round)"),
    json_out: JsonOpt = False,
) -> None:
    """Time one simulator period and one IDLA allocation of N cells; compare IDLA with the 0.05-grid oracle."""
    if ctx.invoked_subcommand is not None:
        return
    if shards is not None:
        from slicing.bench.population import bench_population

        if shards > -(-cells // 3):
            raise typer.BadParameter(f"--shards {shards}: at most one shard per site ({-(-cells // 3)} sites)")
        result = bench_population(cells, shards, periods=periods, seed=seed, log=console.print, estimator=estimator)
        console.print(f"{result['cells']} cells on {shards} shard(s): round {result['round_s']:.2f} s (halo "
                      f"{result['halo_s']:.3f} s, step {result['step_s']:.2f} s, allocate {result['allocate_s']:.2f} s)"
                      f" = {result['cells_per_s']:.0f} cells/s")
        emit_json(json_out, result)
        return
    from slicing.bench.core import bench_core

    result = bench_core(cells, seed, log=console.print, estimator=estimator)
    console.print(f"{result['cells']} cells: sim step {result['sim_step_s']:.3f} s, IDLA {result['allocate_s']:.2f} s "
                  f"({result['cells_per_s']:.0f} cells/s), utility vs 0.05-grid oracle "
                  f"{result['utility_vs_grid_oracle']:.4f}")
    emit_json(json_out, result)



@bench_app.command("rl")
@guarded
def bench_rl_cmd(
    cells: int = typer.Option(48, min=3, max=3000, help="region size of the multi-agent env"),
    inference_cells: int = typer.Option(100_000, "--inference-cells", min=1, help="cells of the batched inference"),
    json_out: JsonOpt = False,
) -> None:
    """Agent steps/s of the multi-agent env alone and through RLlib sampling, and batched inference time."""
    from slicing.bench.rl import bench_rl

    emit_json(json_out, bench_rl(cells=cells, inference_cells=inference_cells, log=console.print))



@bench_app.command("microopt")
@guarded
def bench_microopt_cmd(
    instances: int = typer.Option(10_000, min=1, max=1_000_000, help="e2e slice instances in the one MicroOpt call"),
    slots: int = typer.Option(16, min=1, max=1000, help="traffic points per instance"),
    model: Path | None = typer.Option(None, help="a saved slice model (default: train one for 300 epochs first)"),
    seed: int = typer.Option(0, min=0, help="seed of the instances and the allocator"),
    json_out: JsonOpt = False,
) -> None:
    """Time MicroOpt over N instances in one call against one Peak-alloc grid evaluation of them (target <= 3x)."""
    from slicing.bench.microopt import bench_microopt

    if model is not None and not model.is_file():
        raise typer.BadParameter(f"--model {model}: no such file")
    result = bench_microopt(instances, slots, model, seed, log=console.print)
    console.print(f"ratio MicroOpt / Peak-alloc grid = {result['ratio']:.2f} (target <= 3); feasible "
                  f"{result['feasible_share']:.1%}, mean eta^T r {result['mean_norm_microopt']:.3f} vs Peak-alloc "
                  f"{result['mean_norm_peak_at_thresholds']:.3f}")
    emit_json(json_out, result)


@bench_app.command("serve")
@guarded
def bench_serve_cmd(
    cells: int = typer.Option(300, min=3, max=3_000_000, help="population size behind the GET endpoint"),
    shards: int = typer.Option(2, min=1, help="population shards"),
    requests_total: int = typer.Option(1000, "--requests", min=10, max=100_000, help="paced single-cell GETs"),
    rps: float = typer.Option(100.0, min=1.0, max=10_000.0, help="pace of the GETs (requests per second)"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    json_out: JsonOpt = False,
) -> None:
    """Start the service on 127.0.0.1 (own local Ray) and time POST /v1/allocate (1,000 cells) and paced GETs."""
    from slicing.bench.serve import bench_serve
    from slicing.serve.runner import LocalService, free_port

    with LocalService(host="127.0.0.1", port=free_port(), cells=cells, shards=shards, period_s=900.0,
                      estimator=estimator, log=console.print) as svc:
        result = bench_serve(svc.base_url, svc.scenario.cells, allocate_cells=1000, rps=rps,
                             requests_total=requests_total, log=console.print)
    emit_json(json_out, result)


@bench_app.command("overload")
@guarded
def bench_overload_cmd(
    cells: int = typer.Option(3000, min=3, max=3_000_000, help="population size behind the GET endpoint"),
    shards: int = typer.Option(2, min=1, help="population shards"),
    factor: float = typer.Option(5.0, min=1.0, max=100.0, help="offered load as a multiple of the measured capacity"),
    rps: float | None = typer.Option(None, min=1.0, max=20_000.0, help="offered load, GETs/s (instead of --factor)"),
    seconds: float = typer.Option(10.0, min=1.0, max=300.0, help="how long the overload lasts"),
    timeout_s: float = typer.Option(10.0, "--timeout-s", min=0.5, max=120.0, help="the client's request time-out"),
    front: str = typer.Option("nginx", help="nginx: the shedding front (slicing/serve/front.py) before Serve's "
                                            "proxy, at 0.9 x the measured capacity; none: Serve's proxy alone"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    json_out: JsonOpt = False,
) -> None:
    """Start the service on 127.0.0.1 (own local Ray) and offer single-cell GETs far above its capacity (open loop):
    answers only 200 or 503 with Retry-After, none past the time-out, memory bounded, back to normal after."""
    if front not in ("nginx", "none"):
        raise typer.BadParameter(f"--front {front!r}: choose nginx or none")
    from slicing.bench.overload import bench_overload
    from slicing.serve.runner import LocalService, free_port

    with LocalService(host="127.0.0.1", port=free_port(), cells=cells, shards=shards, period_s=900.0,
                      estimator=estimator, log=console.print) as svc:
        result = bench_overload(svc.base_url, svc.scenario.cells, rps=rps, factor=factor, seconds=seconds,
                                timeout_s=timeout_s, front=front, log=console.print)
    emit_json(json_out, result)


@bench_app.command("chaos")
@guarded
def bench_chaos_cmd(
    cells: int = typer.Option(36, min=3, max=30_000, help="population size (rounded up to whole sites)"),
    shards: int = typer.Option(3, min=2, max=12, help="population shards, spread over the nodes"),
    faults: int = typer.Option(8, min=1, max=200, help="faults injected (each kind once in every block of four)"),
    seed: int = typer.Option(0, help="seeds the fault order, the targets and the load"),
    rps: float = typer.Option(20.0, min=1.0, max=500.0, help="steady request load, requests/s"),
    period_s: float = typer.Option(2.0, "--period-s", min=0.5, max=60.0, help="the population's period"),
    gap_s: float = typer.Option(3.0, "--gap-s", min=0.0, max=600.0, help="quiet time after each recovery"),
    front: str = typer.Option("nginx", help="nginx: the front as deployed (reads that hit a dying replica are "
                                            "retried once); none: Serve's proxy alone"),
    json_out: JsonOpt = False,
) -> None:
    """A 3-node cluster on 127.0.0.1 (head + 2 workers), the population and the HTTP service under a steady load,
    while seeded faults hit it: a shard actor, a worker node, the population actor, a Serve replica. Reports lost
    cells, acknowledged KPI records lost, failed requests and the recovery times."""
    if shards * 3 > cells + 2:
        raise typer.BadParameter(f"--shards {shards}: each shard needs a site (3 cells); --cells {cells} has "
                                 f"{-(-cells // 3)} sites")
    if front not in ("nginx", "none"):
        raise typer.BadParameter(f"--front {front!r}: choose nginx or none")
    from slicing.bench.chaos import bench_chaos

    emit_json(json_out, bench_chaos(cells, shards, faults, seed, rps, period_s, gap_s, front, log=console.print))


@bench_app.command("export")
@guarded
def bench_export_cmd(
    cells: int = typer.Option(100_000, min=3, max=3_000_000, help="population size (rounded up to whole sites)"),
    shards: int = typer.Option(2, min=1, help="population shards"),
    page_limit: int = typer.Option(10_000, "--page-limit", min=1, max=10_000, help="cells per GET /v1/allocations"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    json_out: JsonOpt = False,
) -> None:
    """Start the service on 127.0.0.1 (own local Ray) and time reading every cell's RRMPolicyRatio of one period:
    the NDJSON and Arrow exports and a paged walk (target: 100k cells in <= 10 s)."""
    from slicing.bench.export import bench_export
    from slicing.serve.runner import LocalService, free_port

    with LocalService(host="127.0.0.1", port=free_port(), cells=cells, shards=shards, period_s=900.0,
                      estimator=estimator, log=console.print) as svc:
        result = bench_export(svc.base_url, svc.scenario.cells, page_limit=page_limit, log=console.print)
    emit_json(json_out, result)

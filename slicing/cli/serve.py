"""`slicing serve`: the HTTP service (serve_app.py) on Ray Serve over a simulated, sharded population."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import (
    ScenarioOpt,
    SetOpt,
    console,
    guarded,
    load,
)

# ------------------------------------------------------------------------------------------ HTTP service (v1)


def _serve_settings(max_inflight: int | None, max_cells: int | None) -> dict:
    return {k: v for k, v in {"max_inflight_requests": max_inflight, "max_cells_per_request": max_cells}.items()
            if v is not None}


def _e2e_config(path: Path | None, slice_model: Path | None) -> dict | None:
    """The validated ``--e2e-config`` YAML (``E2eStepConfig``), its SLAs checked against the domains' caps."""
    if path is None:
        return None
    if slice_model is None:
        raise typer.BadParameter("--e2e-config needs --slice-model (the microopt step runs on that model)")
    import yaml
    from pydantic import ValidationError

    from slicing.optim.sla import decompose
    from slicing.runtime.e2e_step import E2eStepConfig

    try:
        raw = yaml.safe_load(path.read_text()) or {}
        cfg = E2eStepConfig.model_validate(raw)
    except OSError as err:
        raise typer.BadParameter(f"--e2e-config {path}: {err.strerror or err}") from None
    except (yaml.YAMLError, ValidationError) as err:
        raise typer.BadParameter(f"--e2e-config {path}: {err}") from None
    for sid, sla in cfg.slas.items():
        dec = decompose(sla.latency_ms, sla.reliability, sla.throughput_mbps)
        if not dec.feasible[0]:
            raise typer.BadParameter(f"--e2e-config {path}: slas.{sid}: cannot be decomposed: {dec.reason[0]}")
    return cfg.model_dump(mode="json")


@app.command()
@guarded
def serve(
    host: str = typer.Option("127.0.0.1", help="HTTP address (0.0.0.0 exposes the service to the network)"),
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port"),
    cells: int | None = typer.Option(None, min=3, max=3_000_000,
                                     help="population size, rounded up to whole sites (default: 300, or the "
                                          "scenario's topology with --scenario)"),
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    period_s: float = typer.Option(900.0, "--period-s", min=0.01, help="advance the population every S seconds"),
    shards: int = typer.Option(2, min=1, help="population shards (Ray actors)"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one, ~10 s)"),
    address: str = typer.Option("local", help="'local': an embedded Ray; 'auto' or host:port: join a cluster"),
    no_http: bool = typer.Option(False, "--no-http", help="cluster only: start the population (detached) and exit; "
                                                          "deploy the HTTP app with `serve deploy cluster/serve.yaml`"),
    max_inflight: int | None = typer.Option(None, min=1, help="requests in progress per replica before 503"),
    max_cells: int | None = typer.Option(None, min=1, help="cells per POST /v1/allocate before 413"),
    slice_model: Path | None = typer.Option(None, "--slice-model", help="an e2e slice model (`slicing experiment "
                                            "microopt --part model`): the population then runs the microopt step "
                                            "(GET /v1/e2e/allocations) and POST /v1/e2e/allocate uses it"),
    e2e_config: Path | None = typer.Option(None, "--e2e-config", help="YAML of the microopt step's settings and "
                                           "per-slice e2e SLAs (scenarios/e2e.yaml); needs --slice-model"),
    registry: Path = typer.Option(Path("out/agents"), "--registry", help="the transfer service's registry folder "
                                  "(GET /v1/agents, POST /v1/transfer)"),
    storage: str | None = typer.Option(None, "--storage", help="checkpoint folder or URI: the population saves every "
                                       "period there, and a restart on it resumes at its last period with the "
                                       "model that was active"),
) -> None:
    """Run the HTTP service (serve_app.py) on Ray Serve over a simulated, sharded population until Ctrl-C.

    POST /v1/kpis needs SLICING_API_TOKEN in the environment (else it answers 503).
    """
    import signal
    import time

    from slicing.serve.runner import LocalService

    if no_http and address == "local":
        raise typer.BadParameter("--no-http needs --address of a running cluster (the population would stop with "
                                 "this process)")
    if slice_model is not None and not slice_model.is_file():
        raise typer.BadParameter(f"--slice-model {slice_model}: no such file")
    step = _e2e_config(e2e_config, slice_model)
    sc = load(scenario, overrides) if (scenario is not None or overrides) else None
    n_cells = cells if cells is not None else (None if scenario is not None else 300)
    svc = LocalService(host=host, port=port, cells=n_cells, scenario=sc, shards=shards,
                       period_s=period_s, estimator=estimator, address=address,
                       settings=_serve_settings(max_inflight, max_cells), log=console.print,
                       slice_model=slice_model, e2e_config=step, registry=registry, storage=storage)
    if no_http:
        svc.start_population()
        console.print("population started (detached); now `serve deploy cluster/serve.yaml`")
        return

    def _terminate(signum, frame):  # SIGTERM (e.g. ray job stop) shuts down like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with svc:
            console.print(f"ready: {svc.base_url}/readyz, API docs {svc.base_url}/docs; Ctrl-C to stop")
            while True:
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("shutting down")
    finally:
        signal.signal(signal.SIGTERM, previous)

"""`slicing models push|list|activate`: roll a QoS estimator or an RL checkpoint out to a running service, and back,
over its HTTP API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from slicing.cli.app import models_app
from slicing.cli.common import JsonOpt, console, emit_json, guarded
from slicing.errors import FieldError

UrlOpt = typer.Option("http://127.0.0.1:8000", "--url", help="the service's base URL")


def _token() -> dict[str, str]:
    token = os.environ.get("SLICING_API_TOKEN")
    if not token:
        raise FieldError(("SLICING_API_TOKEN",), "set it to the service's bearer token (writes need it)")
    return {"Authorization": f"Bearer {token}"}


def _call(method: str, url: str, **kwargs: Any) -> dict:
    """One request; a refusal (4xx) is the usual one-line error (exit 2), an unreachable or failing service exit 1."""
    import requests

    try:
        r = requests.request(method, url, timeout=120, **kwargs)
    except requests.RequestException as err:
        console.print(f"error: cannot reach {url}: {type(err).__name__}")
        raise typer.Exit(1) from None
    if 400 <= r.status_code < 500:
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else r.text
        if isinstance(detail, list) and detail:
            detail = "; ".join(f"{d.get('path')}: {d.get('msg')}" for d in detail)
        raise FieldError((), f"{r.status_code} from {url}: {detail}")
    if r.status_code >= 500:
        console.print(f"error: {r.status_code} from {url}: {r.text[:300]}")
        raise typer.Exit(1)
    return r.json()


@models_app.command("push")
@guarded
def models_push(file: Path = typer.Argument(..., help="a `slicing train-estimator` file, or a `slicing train-rl` "
                                                     "checkpoint folder"),
                url: str = UrlOpt, json_out: JsonOpt = False) -> None:
    """Push an estimator (a file) or an RL checkpoint (a folder, sent as a gzipped tar) to the running service
    (SLICING_API_TOKEN): validated there, active from the next period."""
    if file.is_dir():
        from slicing.rl.inference import pack_checkpoint  # no RLlib import: packing is tarfile only

        try:
            blob = pack_checkpoint(file)
        except FileNotFoundError as err:
            raise typer.BadParameter(f"FILE {err}") from None
        res = _call("POST", url.rstrip("/") + "/v1/models?kind=rl", data=blob,
                    headers=_token() | {"content-type": "application/gzip"})
    elif file.is_file():
        res = _call("POST", url.rstrip("/") + "/v1/models", data=file.read_bytes(),
                    headers=_token() | {"content-type": "application/octet-stream"})
    else:
        raise typer.BadParameter(f"FILE {file}: no such file or folder")
    console.print(f"model {res['version']}: {res['status']} (from period {res['effective_period']})")
    emit_json(json_out, res)


@models_app.command("list")
@guarded
def models_list(url: str = UrlOpt, json_out: JsonOpt = False) -> None:
    """The service's estimator and RL checkpoint versions: active, pending, previous (newest first)."""
    from rich.table import Table

    res = _call("GET", url.rstrip("/") + "/v1/models")
    table = Table(title=f"models of {url}")
    for col in ("kind", "version", "status", "pushed at (UTC)"):
        table.add_column(col)
    import datetime as dt

    rows = [("estimator", v) for v in res["versions"]] + [("rl", v) for v in res.get("rl", {}).get("versions", [])]
    for kind, v in rows:
        at = dt.datetime.fromtimestamp(v["pushed_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(kind, v["version"], v["status"], at)
    console.print(table)
    emit_json(json_out, res)


@models_app.command("activate")
@guarded
def models_activate(version: str = typer.Argument(..., help="a kept version (see `slicing models list`)"),
                    url: str = UrlOpt, json_out: JsonOpt = False) -> None:
    """Switch back (or forward) to a kept version from the next period (SLICING_API_TOKEN)."""
    res = _call("POST", url.rstrip("/") + f"/v1/models/{version}/activate", headers=_token())
    console.print(f"model {res['version']}: {res['status']} (from period {res['effective_period']})")
    emit_json(json_out, res)

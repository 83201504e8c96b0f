"""``TransferService``: the registry of trained cell agents and the transfer-learning service (TL-aided MADRL).

One named Ray actor (``TRANSFER_ACTOR_NAME`` in namespace ``slicing``) holds it, so the CLI (``slicing transfer``)
and the HTTP service (``GET /v1/agents``, ``POST /v1/transfer``) reach the same registry.

- Registry: per agent its RLlib checkpoint, its cells, optionally the file of its transitions (instance transfer)
  and the statistics of its default-action samples (``slicing/transfer/samples.py``). It is persisted to
  ``<root>/registry.json`` (+ ``<root>/samples/<agent>.npz``) after every change and read back when the service
  starts, so it survives actor restarts and separate CLI runs.
- ``rank_sources(target, cells)``: default-action samples of the target cells, one general VAE over every
  registered agent's samples and the target's (``slicing/transfer/ranking.py``; cached per set of agents),
  candidates sorted by latent distance (Lemma 1, or the Gaussian KL with ``method="kl"``).
- ``transfer(target, cells, source=None, strategy="integrated")``: the nearest source unless one is named, then
  ``slicing.rl.transfer.transfer_train`` (model / instance / integrated / feature). Run in the
  foreground (``wait=True``, the CLI) or as a background job (``wait=False``, the HTTP service: the answer comes at
  once with the ranking, and the new agent shows in ``agents()`` as ``training`` until it is ``ready``/``failed``).

Agent names: 1-64 characters of ``[A-Za-z0-9_.-]``. Bad input is a ``TransferError`` (a ``FieldError``: the path
of the field, ``("source",)``, and the rule): unknown agent, target without samples, observation sizes that do not
match, a strategy that needs transitions the source does not have. It crosses Ray as itself, so
``POST /v1/transfer`` answers 422 with ``body.source`` and the CLI prints ``source: unknown agent 'x'; ...``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario, build_scenario
from slicing.errors import FieldError
from slicing.rl.settings import STRATEGIES

TRANSFER_ACTOR_NAME = "slicing-transfer"
NAMESPACE = "slicing"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEEP: list[Any] = []


class TransferError(FieldError):
    """Bad input to the transfer service: ``TransferError(("target",), rule)``.

    ``TransferError(message)`` (one argument) is a rule about no single field.
    """

    def __init__(self, path: tuple[str | int, ...] | list[str | int] | str, message: str | None = None) -> None:
        if message is None:
            path, message = (), str(path)
        super().__init__(path, message)


@dataclass
class AgentRecord:
    name: str
    cells: list[int]
    checkpoint: str | None
    transitions: str | None = None
    obs_dim: int | None = None
    status: str = "ready"  # ready | training | failed
    source: str | None = None  # for transferred agents
    strategy: str | None = None
    distance: float | None = None
    early_reward: float | None = None
    final_reward: float | None = None
    error: str | None = None
    registered_at: float = field(default_factory=time.time)
    samples: dict[str, Any] | None = None  # SampleStats.as_dict()

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        if d["samples"] is not None:
            d["samples"] = {k: d["samples"][k] for k in ("count", "obs_dim", "episodes", "episode_len")} | {
                "reward_mean": d["samples"]["mean"][-1]}
        return d


def parse_cells(spec: str | list[int], n_cells: int, field_name: str = "cells") -> list[int]:
    """``"0-5,9"`` or a list of ints -> sorted unique ids within [0, n_cells)."""
    ids: set[int] = set()
    if isinstance(spec, str):
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, sep, hi = part.partition("-")
            try:
                a, b = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise TransferError((field_name,), f"{part!r} is not an id or a range like 0-5") from None
            if b < a:
                raise TransferError((field_name,), f"range {part!r} is empty")
            ids.update(range(a, b + 1))
    else:
        ids.update(int(c) for c in spec)
    if not ids:
        raise TransferError((field_name,), "give at least one cell id")
    bad = sorted(c for c in ids if not 0 <= c < n_cells)
    if bad:
        raise TransferError((field_name,), f"ids {bad[:5]} outside [0, {n_cells})")
    return sorted(ids)


def _check_name(name: str, field_name: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise TransferError((field_name,), f"{name!r} must be 1-64 characters of letters, digits, '_', '.', '-'")
    return name


class TransferService:
    """The body of ``TransferActor`` (usable in-process too). See the module docstring."""

    def __init__(self, scenario: Scenario | dict, root: str | Path, episodes: int = 2, episode_len: int = 96,
                 seed: int = 0, iterations: int = 10, vae_epochs: int | None = None) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else build_scenario(dict(scenario))
        self.root = Path(root)
        (self.root / "samples").mkdir(parents=True, exist_ok=True)
        self.episodes, self.episode_len, self.seed = int(episodes), int(episode_len), int(seed)
        self.iterations = int(iterations)
        self.vae_epochs = vae_epochs
        self._lock = threading.RLock()
        self._agents: dict[str, AgentRecord] = {}
        self._samples: dict[str, np.ndarray] = {}
        self._vae_cache: dict[tuple, Any] = {}
        self._jobs: dict[str, threading.Thread] = {}
        self._load()

    # -------------------------------------------------------------------------------------------- registry
    @property
    def registry_file(self) -> Path:
        return self.root / "registry.json"

    def _load(self) -> None:
        if not self.registry_file.is_file():
            return
        try:
            raw = json.loads(self.registry_file.read_text())
            for d in raw.get("agents", []):
                rec = AgentRecord(**d)
                if rec.status == "training":  # the job died with the previous process
                    rec.status, rec.error = "failed", "interrupted (service restarted during training)"
                self._agents[rec.name] = rec
        except (OSError, ValueError, TypeError) as err:
            raise TransferError((), f"{self.registry_file}: unreadable registry ({err})") from None

    def _save(self) -> None:
        tmp = self.registry_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"agents": [asdict(a) for a in self._agents.values()]}, indent=1))
        tmp.replace(self.registry_file)

    def agents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.public() for a in sorted(self._agents.values(), key=lambda a: a.name)]

    def agent(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._get(name, "agent").public()

    def _get(self, name: str, field_name: str) -> AgentRecord:
        rec = self._agents.get(name)
        if rec is None:
            known = sorted(self._agents)
            raise TransferError((field_name,), f"unknown agent {name!r}; registered: {known[:20]}")
        return rec

    def register(self, name: str, cells: str | list[int], checkpoint: str | None,
                 transitions: str | None = None, replace: bool = False) -> dict[str, Any]:
        """Add a trained agent (its checkpoint and cells); collects its default-action samples."""
        _check_name(name)
        ids = parse_cells(cells, self.scenario.cells)
        if checkpoint is not None and not Path(checkpoint).is_dir():
            raise TransferError(("checkpoint",), f"{checkpoint!r} is not a folder (a `slicing train-rl` checkpoint)")
        if transitions is not None and not Path(transitions).is_file():
            raise TransferError(("transitions",), f"{transitions!r} is not a file")
        with self._lock:
            if name in self._agents and not replace:
                raise TransferError(("name",), f"agent {name!r} is already registered (replace=True to overwrite)")
        samples = self._collect(name, ids)
        rec = AgentRecord(name=name, cells=ids, checkpoint=None if checkpoint is None else str(checkpoint),
                          transitions=transitions, obs_dim=int(samples.stats.obs_dim),
                          samples=samples.stats.as_dict())
        with self._lock:
            self._agents[name] = rec
            self._save()
        return rec.public()

    def unregister(self, name: str) -> None:
        with self._lock:
            self._get(name, "name")
            del self._agents[name]
            self._samples.pop(name, None)
            (self.root / "samples" / f"{name}.npz").unlink(missing_ok=True)
            self._save()

    # ------------------------------------------------------------------------------------------- samples
    def _collect(self, name: str, cells: list[int]):
        from slicing.rl.transfer_samples import collect_default_samples

        samples = collect_default_samples(self.scenario, cells, episodes=self.episodes, episode_len=self.episode_len,
                                          seed=self.seed, name=name)
        np.savez_compressed(self.root / "samples" / f"{name}.npz", data=samples.data)
        with self._lock:
            self._samples[name] = samples.data
        return samples

    def _samples_of(self, name: str) -> np.ndarray:
        with self._lock:
            if name in self._samples:
                return self._samples[name]
        path = self.root / "samples" / f"{name}.npz"
        if not path.is_file():
            raise TransferError((), f"agent {name!r}: no default-action samples (register it again)")
        with np.load(path) as f:
            data = f["data"]
        with self._lock:
            self._samples[name] = data
        return data

    # ------------------------------------------------------------------------------------------- ranking
    def rank_sources(self, target: str, cells: str | list[int] | None = None, method: str = "mean",
                     sources: list[str] | None = None) -> list[dict[str, Any]]:
        """Candidates sorted by latent distance to the target (named agent, or new cells under that name)."""
        from slicing.transfer.ranking import fit_general_vae, rank_sources

        _check_name(target, "target")
        with self._lock:
            ready = [a.name for a in self._agents.values() if a.status == "ready" and a.checkpoint and a.name != target]
        candidates = ready if sources is None else [self._get(s, "source").name for s in sources]
        if not candidates:
            raise TransferError(("source",), "no trained agent is registered to transfer from")
        if cells is not None:
            ids = parse_cells(cells, self.scenario.cells, "cells")
            target_data = self._target_samples(target, ids)
        elif target in self._agents:
            target_data = self._samples_of(target)
        else:
            raise TransferError(("target",), f"{target!r} is not registered; give its cells")
        if len(target_data) == 0:
            raise TransferError(("target",), f"{target!r} has no samples")
        data = {name: self._samples_of(name) for name in candidates} | {target: target_data}
        dims = {name: d.shape[1] - 1 for name, d in data.items()}
        bad = {n: d for n, d in dims.items() if d != dims[target]}
        if bad:
            raise TransferError(("source",), f"observation sizes {bad} do not match the target's {dims[target]} "
                                "(different slice catalogue)")
        key = (tuple(sorted(candidates)), target, len(target_data), float(target_data.sum()))
        vae = self._vae_cache.get(key)
        if vae is None:
            from slicing.models.vae import VaeConfig

            cfg = VaeConfig() if self.vae_epochs is None else VaeConfig(epochs=self.vae_epochs)
            vae, _ = fit_general_vae(data, cfg, seed=self.seed)
            self._vae_cache = {key: vae}
        ranked = rank_sources(data, target, vae, method, sources=candidates)
        return [{"source": s, "distance": float(d)} for s, d in ranked]

    def _target_samples(self, target: str, ids: list[int]) -> np.ndarray:
        with self._lock:
            rec = self._agents.get(target)
        if rec is not None and rec.cells == ids and target in self._samples:
            return self._samples[target]
        from slicing.rl.transfer_samples import collect_default_samples

        return collect_default_samples(self.scenario, ids, episodes=self.episodes, episode_len=self.episode_len,
                                       seed=self.seed, name=target).data

    # ------------------------------------------------------------------------------------------ transfer
    def transfer(self, target: str, cells: str | list[int], source: str | None = None,
                 strategy: str = "integrated", iterations: int | None = None, method: str = "mean",
                 wait: bool = True) -> dict[str, Any]:
        """Train agent ``target`` on ``cells`` starting from ``source`` (default: the nearest) with ``strategy``."""
        _check_name(target, "target")
        if strategy not in STRATEGIES:
            raise TransferError(("strategy",), f"{strategy!r}; choose from {list(STRATEGIES)}")
        iters = self.iterations if iterations is None else int(iterations)
        if not 1 <= iters <= 10_000:
            raise TransferError(("iterations",), f"{iters} must be in [1, 10000]")
        ids = parse_cells(cells, self.scenario.cells, "cells")
        with self._lock:
            existing = self._agents.get(target)
            if existing is not None and existing.status == "training":
                raise TransferError(("target",), f"agent {target!r} is already training")
        ranking = self.rank_sources(target, ids, method)
        chosen = ranking[0]["source"] if source is None else self._get(source, "source").name
        src = self._agents[chosen]
        if strategy in ("instance", "integrated") and not src.transitions:
            raise TransferError(("strategy",), f"{strategy!r} needs the source's transitions; agent {chosen!r} has "
                                               "none (use 'model' or 'feature', or register it with transitions)")
        dist = next((r["distance"] for r in ranking if r["source"] == chosen), None)
        rec = AgentRecord(name=target, cells=ids, checkpoint=None, status="training", source=chosen,
                          strategy=strategy, distance=dist, obs_dim=src.obs_dim)
        with self._lock:
            self._agents[target] = rec
            self._save()
        job = threading.Thread(target=self._run, args=(rec, src, iters), name=f"transfer-{target}", daemon=True)
        self._jobs[target] = job
        job.start()
        if wait:
            job.join()
        return {"target": target, "source": chosen, "strategy": strategy, "iterations": iters,
                "ranking": ranking, "agent": self.agent(target)}

    def _run(self, rec: AgentRecord, src: AgentRecord, iterations: int) -> None:
        from slicing.rl.transfer import transfer_train

        source = {"checkpoint": src.checkpoint, "transitions": src.transitions, "cells": src.cells,
                  "obs_dim": src.obs_dim}
        try:
            out = transfer_train(self.scenario, rec.cells, rec.strategy, source, iterations, self.seed,
                                 self.root / "agents" / rec.name, episode_len=self.episode_len)
            rec.checkpoint = str(out["checkpoint"])
            rec.early_reward = out.get("early_reward")
            rec.final_reward = out.get("final_reward")
            self._collect(rec.name, rec.cells)
            rec.samples = {"count": len(self._samples[rec.name]), "obs_dim": rec.obs_dim,
                           "mean": self._samples[rec.name].mean(axis=0).tolist(),
                           "std": self._samples[rec.name].std(axis=0).tolist(), "episodes": self.episodes,
                           "episode_len": self.episode_len, "seed": self.seed, "cells": rec.cells}
            rec.status = "ready"
        except Exception as err:  # reported in the registry, the service stays up
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
        with self._lock:
            self._save()

    def wait(self, target: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until the target's background transfer ends (or the timeout); returns its record."""
        job = self._jobs.get(target)
        if job is not None:
            job.join(timeout_s)
        return self.agent(target)

    def ready(self) -> bool:
        return True


def _actor_class():
    import ray

    return ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=8)(TransferService)


def start_transfer_actor(scenario: Scenario | dict, root: str | Path, detached: bool = False, **kwargs: Any):
    """Create (or return the running) named TransferService actor; Ray must be initialised."""
    import ray

    try:
        return ray.get_actor(TRANSFER_ACTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        pass
    sc = scenario.model_dump(mode="json") if isinstance(scenario, Scenario) else dict(scenario)
    handle = _actor_class().options(name=TRANSFER_ACTOR_NAME, namespace=NAMESPACE, get_if_exists=True,
                                    lifetime="detached" if detached else None).remote(sc, str(Path(root).resolve()),
                                                                                     **kwargs)
    ray.get(handle.ready.remote())
    _KEEP.append(handle)
    return handle


def get_transfer_actor():
    import ray

    return ray.get_actor(TRANSFER_ACTOR_NAME, namespace=NAMESPACE)


def stop_transfer_actor() -> None:
    import ray

    with contextlib.suppress(ValueError):  # not running
        ray.kill(get_transfer_actor())
    _KEEP.clear()

"""Which QoS estimator (and RL policy) a replica allocates with, loaded and refreshed by a background thread.

Estimator (which one ``POST /v1/allocate`` uses), decided in a background thread when the replica starts, so that
``/healthz`` answers at once and ``/readyz`` says 503 until it is done:

1. ``SLICING_ESTIMATOR_PATH`` (``ServiceSettings.estimator_path``) if set: that file, for good (source ``file``);
2. else the running population's estimator (``estimator_payload()`` of the ``slicing-population`` actor, source
   ``population``), waited for up to ``POPULATION_WAIT_S``; the service then follows it: every
   ``REFRESH_S`` it compares the population's ``model_version()`` with its own and reloads on a change, so the
   stateless and the stateful endpoints report the same ``model_version``;
3. else a small estimator trained at start with ``slicing.optim.rollout.bootstrap_estimator`` (36 cells, 600 periods,
   ``SLICING_TRAIN_EPOCHS`` epochs, about 10 s on 2 cores; source ``trained``), replaced by the population's as
   soon as one appears.

RL policy (scheme ``rl`` of ``POST /v1/allocate``): ``SLICING_RL_CHECKPOINT`` names a ``slicing train-rl``
checkpoint, loaded first by the same background thread, which then follows the population's active RL checkpoint
(one pushed with ``POST /v1/models?kind=rl``, or rolled back to) within ``REFRESH_S``
(``slicing.rl.inference.RlPolicy``; imports RLlib). A loading failure is kept in ``rl_error`` (reported by
``/readyz`` and by 422s of scheme ``rl``).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from slicing.models.qos_estimator import (
    QosEstimator,
    estimator_from_payload,
    load_estimator,
    save_estimator,
    weights_version,
)
from slicing.optim.rollout import bootstrap_estimator
from slicing.serve.population_client import PopulationClient
from slicing.serve.settings import ServiceSettings

log = logging.getLogger("slicing.serve.estimators")

POPULATION_WAIT_S = 10.0  # how long the estimator loader waits for a population before training its own
REFRESH_S = 2.0  # how often the service compares its estimator with the population's (a roll-out's lag)
POLL_S = 0.5  # how often the loader looks for a population while it waits


def model_from_payload(payload: Any) -> QosEstimator:
    """Rebuild a QosEstimator from the population's ``estimator_payload()``.

    Accepted: the object-store payload (``qos_estimator.estimator_payload``, format ``slicing.estimator-payload/1``),
    the bytes of a ``save_estimator`` file or the dict such a file holds, or a QosEstimator itself. All but the
    last are checked (shapes and content-hash version).
    """
    if isinstance(payload, QosEstimator):
        payload.eval()
        if payload.version is None:
            payload.version = weights_version(payload)
        return payload
    if isinstance(payload, dict) and "state" in payload and "state_dict" not in payload:
        return estimator_from_payload(payload)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estimator.pt"
        if isinstance(payload, bytes | bytearray | memoryview):
            path.write_bytes(bytes(payload))
        elif isinstance(payload, dict):
            torch.save(payload, path)
        else:
            raise TypeError(f"estimator payload of unsupported type {type(payload).__name__}")
        return load_estimator(path)


def train_fallback(seed: int, epochs: int) -> QosEstimator:
    """The small estimator of source ``trained``, persisted once so that it has a content-hash version."""
    model = bootstrap_estimator(seed, log.info, epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        save_estimator(model, Path(tmp) / "estimator.pt")
    return model


class Estimators:
    """The replica's estimator and RL policy (see the module docstring); ``start()`` launches the loader thread.

    ``train(seed, epochs)`` replaces ``train_fallback`` (tests); ``model``, ``model_version``, ``source``,
    ``load_error``, ``rl_policy`` and ``rl_error`` are read by the requests.
    """

    def __init__(self, settings: ServiceSettings, population: PopulationClient,
                 train: Callable[[int, int], QosEstimator] = train_fallback) -> None:
        self.settings = settings
        self.population = population
        self.train = train
        self.model: QosEstimator | None = None
        self.model_version: str | None = None
        self.source: str | None = None  # file | population | trained
        self.load_error: str | None = None
        self.rl_policy = None  # slicing.rl.inference.RlPolicy when SLICING_RL_CHECKPOINT is set and loads
        self.rl_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loader, name="slicing-estimator-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def set_model(self, model: QosEstimator, source: str) -> None:
        """Use ``model`` from now on (its version is its content hash)."""
        model.eval()
        version = model.version or weights_version(model)
        model.version = version
        self.model, self.model_version, self.source = model, version, source
        log.info("estimator %s loaded from %s", version, source)

    def load_rl(self) -> None:
        """Load the RL policy of ``SLICING_RL_CHECKPOINT`` (if set); a failure is kept in ``rl_error``."""
        if self.settings.rl_checkpoint is None:
            return
        try:
            from slicing.rl.inference import RlPolicy

            self.rl_policy = RlPolicy.from_checkpoint(self.settings.rl_checkpoint)
            log.info("RL policy %s loaded from %s", self.rl_policy.version, self.settings.rl_checkpoint)
        except Exception as err:
            self.rl_error = f"{type(err).__name__}: {err}"
            log.exception("RL checkpoint loading failed")

    def _load_from_population(self) -> bool:
        if self.population.ready_model_version() is None:
            return False
        try:
            model = model_from_payload(self.population.estimator_payload())
        except Exception as err:  # the population went away meanwhile, or its payload is bad: try again later
            log.warning("could not load the population's estimator: %s", err)
            return False
        self.set_model(model, "population")
        return True

    def _loader(self) -> None:
        self.load_rl()
        try:
            if self.settings.estimator_path is not None:
                self.set_model(load_estimator(self.settings.estimator_path), "file")  # final: no refresh
            deadline = time.monotonic() + POPULATION_WAIT_S
            while self.model is None and not self._load_from_population():
                if time.monotonic() > deadline or self._stop.wait(POLL_S):
                    break
            if self.model is None and not self._stop.is_set():
                self.set_model(self.train(self.settings.seed, self.settings.train_epochs), "trained")
        except Exception as err:  # reported by /readyz
            self.load_error = f"{type(err).__name__}: {err}"
            log.exception("estimator loading failed")
            return
        while not self._stop.wait(REFRESH_S):
            version = None if self.source == "file" else self.population.ready_model_version()
            if version is not None and version != self.model_version:
                self._load_from_population()
            self._refresh_rl()

    def _refresh_rl(self) -> None:
        """Follow the population's active RL checkpoint (a push or a roll back) when it has one."""
        try:  # never lets a failure here stop the estimator's refresh loop
            version = self.population.ready_rl_version()
            if version is None or (self.rl_policy is not None and version == self.rl_policy.version):
                return
            from slicing.rl.inference import policy_from_archive

            policy = policy_from_archive(self.population.rl_archive())
        except Exception as err:  # the population went away meanwhile: try again later
            log.warning("could not load the population's RL checkpoint: %s", err)
            return
        self.rl_policy, self.rl_error = policy, None
        log.info("RL policy %s loaded from the population", policy.version)

"""Settings of the HTTP service, read from the environment (prefix ``SLICING_``) when a replica starts.

Nothing is read at import time: ``load_settings()`` is called in the Serve deployment's constructor, so the
environment of the replica process counts (set it with the deployment's ``runtime_env.env_vars``, see
``cluster/serve.yaml``). Keyword overrides (the application builder's ``args``) win over the environment.

| variable | default | meaning |
|---|---|---|
| ``SLICING_API_TOKEN`` | unset | bearer token of the writing routes; unset = writes disabled (503) |
| ``SLICING_API_TOKEN_FILE`` | unset | a file whose first line is that token (instead of the variable) |
| ``SLICING_READ_TOKEN`` | unset | bearer token of the reading ``/v1`` routes (the write token too); unset: open |
| ``SLICING_READ_TOKEN_FILE`` | unset | a file whose first line is the read token |
| ``SLICING_MAX_CELLS_PER_REQUEST`` | 2000 | more cells in one ``POST /v1/allocate`` -> 413 |
| ``SLICING_MAX_INFLIGHT_REQUESTS`` | 32 | requests in progress per replica above which new ones get 503 + Retry-After |
| ``SLICING_RETRY_AFTER_S`` | 1 | the Retry-After value (seconds) of overload responses |
| ``SLICING_ESTIMATOR_PATH`` | unset | a saved estimator (``slicing train-estimator``); else ``serve/estimators.py`` |
| ``SLICING_RL_CHECKPOINT`` | unset | a ``slicing train-rl`` checkpoint: enables scheme ``rl`` (``POST /v1/allocate``) |
| ``SLICING_TRAIN_EPOCHS`` | 40 | epochs of the small estimator trained when neither a file nor a population has one |
| ``SLICING_SEED`` | 0 | seed of that training and of IDLA's start points |
| ``SLICING_POPULATION_TIMEOUT_S`` | 5 | timeout of one call to the population actor (then 503) |
| ``SLICING_TORCH_THREADS`` | 1 | torch threads of a replica (more threads than free cores slows IDLA ~10x) |
| ``SLICING_SLICE_MODEL_PATH`` | unset | e2e slice model file of ``POST /v1/e2e/allocate``; else one is trained |
| ``SLICING_SLICE_MODEL_EPOCHS`` | 300 | epochs of that trained slice model |
| ``SLICING_MAX_E2E_SLICES_PER_REQUEST`` | 20000 | more slices in one ``POST /v1/e2e/allocate`` -> 413 |
| ``SLICING_PLMN_MCC`` / ``SLICING_PLMN_MNC`` | 001 / 01 | the PLMN of the ``rRMPolicyMemberList`` entries |
| ``SLICING_MAX_BODY_BYTES`` | 33554432 (32 MiB) | a larger request body -> 413 before it is parsed |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLICING_", extra="forbid", frozen=True)

    api_token: SecretStr | None = Field(default=None, description="bearer token of the writing routes")
    api_token_file: Path | None = Field(default=None, description="a file holding the write token instead")
    read_token: SecretStr | None = Field(default=None, description="bearer token of the reading /v1 routes; unset: "
                                                                   "reads are open")
    read_token_file: Path | None = Field(default=None, description="a file holding the read token instead")
    max_cells_per_request: int = Field(default=2000, ge=1, le=1_000_000, description="413 above this")
    max_inflight_requests: int = Field(default=32, ge=1, le=100_000, description="503 + Retry-After above this")
    retry_after_s: int = Field(default=1, ge=0, le=3600, description="Retry-After of overload responses")
    estimator_path: Path | None = Field(default=None, description="saved estimator file (see serve/estimators.py)")
    rl_checkpoint: Path | None = Field(default=None, description="RL checkpoint of scheme rl (slicing train-rl)")
    train_epochs: int = Field(default=40, ge=1, le=10_000, description="epochs of the fallback estimator")
    seed: int = Field(default=0, ge=0, description="training and IDLA start-point seed")
    population_timeout_s: float = Field(default=5.0, gt=0, le=600, description="per call to the population actor")
    torch_threads: int = Field(default=1, ge=1, le=256, description="torch intra-op threads of a replica")
    slice_model_path: Path | None = Field(default=None, description="saved e2e slice model (POST /v1/e2e/allocate)")
    slice_model_epochs: int = Field(default=300, ge=1, le=100_000, description="epochs of the fallback slice model")
    max_body_bytes: int = Field(default=32 * 2**20, ge=1024, le=2**31, description="413 for a larger request body, "
                                                                                   "before it is parsed")
    plmn_mcc: str = Field(default="001", pattern=r"^[0-9]{3}$", description="PLMN mobile country code of the "
                                                                          "RRMPolicyRatio members (001: test PLMN)")
    plmn_mnc: str = Field(default="01", pattern=r"^[0-9]{2,3}$", description="PLMN mobile network code")
    max_e2e_slices_per_request: int = Field(default=20_000, ge=1, le=1_000_000, description="413 above this")

    @model_validator(mode="after")
    def _token_files(self) -> ServiceSettings:
        """A token may come from a file (``SLICING_API_TOKEN_FILE``, ``SLICING_READ_TOKEN_FILE``: its first line),
        not from both places; an unreadable or empty file is refused naming it (never showing a token)."""
        for name in ("api_token", "read_token"):
            path = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: give SLICING_{name.upper()} or SLICING_{name.upper()}_FILE, not both")
            try:
                lines = Path(path).read_text().strip().splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(f"{name}_file {path}: cannot be read ({type(err).__name__})") from None
            token = lines[0].strip() if lines else ""
            if not token:
                raise ValueError(f"{name}_file {path}: is empty")
            object.__setattr__(self, name, SecretStr(token))  # frozen model: set once, here
        return self

    @property
    def ingest_enabled(self) -> bool:
        return self.api_token is not None and bool(self.api_token.get_secret_value())

    @property
    def reads_open(self) -> bool:
        return self.read_token is None or not self.read_token.get_secret_value()


def load_settings(**overrides: Any) -> ServiceSettings:
    """Environment (``SLICING_*``) + explicit overrides (None values are ignored)."""
    return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})

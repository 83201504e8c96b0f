"""Bearer tokens: the write token of the writing routes (``POST /v1/kpis``, ``/v1/transfer``, ``/v1/models``), and
an optional read token of the reading ``/v1`` routes (the write token reads too). Compared in constant time
(``hmac.compare_digest``); tokens are ``SecretStr`` everywhere, so no log line or repr shows them."""

from __future__ import annotations

import hmac

from slicing.serve.errors import ServiceError
from slicing.serve.settings import ServiceSettings


def check_token(settings: ServiceSettings, authorization: str | None) -> None:
    """503 if ingest is disabled (SLICING_API_TOKEN unset), 401 unless ``Authorization: Bearer <token>`` matches."""
    if not settings.ingest_enabled:
        raise ServiceError(503, "ingest disabled: SLICING_API_TOKEN not set",
                           {"Retry-After": str(settings.retry_after_s)})
    if not _matches(authorization, settings.api_token):
        raise ServiceError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


def check_read_token(settings: ServiceSettings, authorization: str | None) -> None:
    """Nothing when reads are open (no read token set); else 401 unless the read or the write token is given."""
    if settings.reads_open:
        return
    if not (_matches(authorization, settings.read_token) or _matches(authorization, settings.api_token)):
        raise ServiceError(401, "missing or wrong bearer token (this service requires one to read)",
                           {"WWW-Authenticate": "Bearer"})


def _matches(authorization: str | None, token) -> bool:
    if token is None or not token.get_secret_value():
        return False
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())

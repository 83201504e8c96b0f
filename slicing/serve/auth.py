"""The bearer token of the writing endpoints (``POST /v1/kpis``, ``POST /v1/transfer``)."""

from __future__ import annotations

import hmac

from slicing.serve.errors import ServiceError
from slicing.serve.settings import ServiceSettings


def check_token(settings: ServiceSettings, authorization: str | None) -> None:
    """503 if ingest is disabled (SLICING_API_TOKEN unset), 401 unless ``Authorization: Bearer <token>`` matches."""
    if not settings.ingest_enabled:
        raise ServiceError(503, "ingest disabled: SLICING_API_TOKEN not set",
                           {"Retry-After": str(settings.retry_after_s)})
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.api_token.get_secret_value()  # type: ignore[union-attr]
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ServiceError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

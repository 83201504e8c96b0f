"""The bearer token of the writing endpoints (slicing/serve/auth.py)."""

from __future__ import annotations

import pytest

from slicing.serve.auth import check_token
from slicing.serve.errors import ServiceError
from slicing.serve.settings import ServiceSettings


def test_disabled_without_a_token() -> None:
    for token in (None, ""):
        with pytest.raises(ServiceError) as err:
            check_token(ServiceSettings(api_token=token), "Bearer x")
        assert err.value.status == 503 and err.value.detail == "ingest disabled: SLICING_API_TOKEN not set"
        assert err.value.headers == {"Retry-After": "1"}  # 503 only with Retry-After


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", "Basic tok", "tok", "Bearer tok2",
                                    "Bearer to"])
def test_wrong_or_missing_bearer_is_401(header: str | None) -> None:
    with pytest.raises(ServiceError) as err:
        check_token(ServiceSettings(api_token="tok"), header)
    assert err.value.status == 401 and err.value.headers == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize("header", ["Bearer tok", "bearer tok", "BEARER tok", "Bearer  tok "])
def test_matching_bearer_passes(header: str) -> None:
    check_token(ServiceSettings(api_token="tok"), header)

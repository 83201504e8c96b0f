"""Bearer tokens (slicing/serve/auth.py): the write token, the optional read token, tokens from files."""

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


def test_reads_are_open_unless_a_read_token_is_set() -> None:
    from slicing.serve.auth import check_read_token

    check_read_token(ServiceSettings(api_token="w"), None)  # open
    settings = ServiceSettings(api_token="w", read_token="r")
    for header in ("Bearer r", "Bearer w"):  # the read token, or the write token
        check_read_token(settings, header)
    for header in (None, "Bearer x", "Basic r"):
        with pytest.raises(ServiceError) as err:
            check_read_token(settings, header)
        assert err.value.status == 401 and err.value.headers == {"WWW-Authenticate": "Bearer"}
    with pytest.raises(ServiceError):  # the read token does not write
        check_token(settings, "Bearer r")


def test_tokens_from_files_never_shown(tmp_path) -> None:
    from pydantic import ValidationError

    write, read = tmp_path / "write", tmp_path / "read"
    write.write_text("s3cret-w\n")
    read.write_text("s3cret-r\nignored second line\n")
    s = ServiceSettings(api_token_file=write, read_token_file=read)
    assert s.api_token.get_secret_value() == "s3cret-w" and s.read_token.get_secret_value() == "s3cret-r"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())
    check_token(s, "Bearer s3cret-w")
    (tmp_path / "empty").write_text("\n")
    cases = [({"api_token": "x", "api_token_file": write}, "not both"),
             ({"read_token_file": tmp_path / "missing"}, "cannot be read"),
             ({"api_token_file": tmp_path / "empty"}, "is empty")]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message) as err:
            ServiceSettings(**kwargs)
        assert "s3cret" not in str(err.value)

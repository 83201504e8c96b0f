"""HTTP error answers (slicing/serve/errors.py)."""

from __future__ import annotations

from slicing.serve.errors import ServiceError, invalid, unavailable


def test_422_with_a_path_is_a_validation_body() -> None:
    err = invalid(("cells", 2, "slices", 0, "last_period"), "required")
    assert err.status == 422 and err.path == "body.cells.2.slices.0.last_period"
    assert err.body() == {"detail": [{"path": "body.cells.2.slices.0.last_period", "msg": "required",
                                      "type": "value_error"}]}


def test_other_statuses_carry_a_plain_detail() -> None:
    err = ServiceError(404, "unknown cell 'x'")
    assert err.body() == {"detail": "unknown cell 'x'"} and err.headers == {}
    busy = unavailable("population not available", 7)
    assert busy.status == 503 and busy.headers == {"Retry-After": "7"} and busy.body() == {
        "detail": "population not available"}

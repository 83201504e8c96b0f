"""``FieldError`` (slicing/errors.py): a ValueError carrying a field path, that survives pickling unchanged."""

from __future__ import annotations

import pickle

import pytest

from slicing.errors import FieldError, dotted


class Sub(FieldError):
    """A library's own kind of field error (as ``TransferError``)."""


def test_message_names_the_path():
    err = FieldError(["records", 3, "cqi"], "must be in [0, 15]")
    assert isinstance(err, ValueError)
    assert err.path == ("records", 3, "cqi") and err.message == "must be in [0, 15]"
    assert str(err) == "records.3.cqi: must be in [0, 15]"
    assert str(FieldError((), "no cells")) == "no cells"  # an error of the whole input has no prefix
    assert dotted(()) == "" and dotted(["a", 0]) == "a.0"
    with pytest.raises(ValueError, match=r"^records\.3\.cqi: must"):
        raise err


def test_pickles_with_its_path_and_message():
    err = FieldError(("records", 3, "cqi"), "must be in [0, 15]")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is FieldError
    assert (back.path, back.message, str(back)) == (err.path, err.message, str(err))

    sub = pickle.loads(pickle.dumps(Sub(("source",), "unknown agent")))
    assert type(sub) is Sub and sub.path == ("source",)


def test_under_prefixes_the_path_and_keeps_the_type():
    err = Sub(("cqi",), "must be in [0, 15]").under("records", 3)
    assert type(err) is Sub and err.path == ("records", 3, "cqi") and err.message == "must be in [0, 15]"
    assert str(err) == "records.3.cqi: must be in [0, 15]"


def test_detail_is_one_entry_of_a_422_body():
    err = FieldError(("records", 3, "cqi"), "must be in [0, 15]")
    assert err.detail() == {"path": "body.records.3.cqi", "msg": "must be in [0, 15]", "type": "value_error"}
    assert err.detail("query")["path"] == "query.records.3.cqi"
    assert err.detail("")["path"] == "records.3.cqi"
    assert FieldError((), "no cells").detail()["path"] == "body"

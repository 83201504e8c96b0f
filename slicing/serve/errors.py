"""HTTP error answers of the service, as exceptions the routes let through (``serve_app.py`` maps them).

- ``ServiceError(status, detail, headers, path)``: an answer other than 200; a 422 carries the JSON ``path`` of the
  field it refuses (``body.scheme``), the others a plain ``detail`` string.
- ``unavailable``: 503 with ``Retry-After`` (estimator loading, population or transfer service unreachable).
- Bad input found below the HTTP layer is a ``slicing.errors.FieldError`` (path, message), raised by the library
  and carried across Ray as itself; ``serve_app.py`` answers it with 422 and ``err.detail("body")``. Nothing here
  parses messages back into paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from slicing.errors import dotted


class ServiceError(Exception):
    """An HTTP error answer: status code, detail message, extra headers, and for a 422 the field's JSON path."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None,
                 path: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.path = status, detail, headers or {}, path

    def body(self) -> dict:
        """The JSON answer: ``{"detail": [{"path", "msg", "type"}]}`` for a 422 with a path, else ``{"detail"}``."""
        if self.status == 422 and self.path is not None:
            return {"detail": [{"path": self.path, "msg": self.detail, "type": "value_error"}]}
        return {"detail": self.detail}


def unavailable(detail: str, retry_after_s: int) -> ServiceError:
    """503 + ``Retry-After``: try again later."""
    return ServiceError(503, detail, {"Retry-After": str(retry_after_s)})


def invalid(path: Sequence[str | int], detail: str) -> ServiceError:
    """422 naming the request field at ``path`` (from the body's root: ``("cells", 2, "slices")``)."""
    return ServiceError(422, detail, path=dotted(("body", *path)))

"""Bad input as data: a field path and a message, raised below the HTTP layer and carried across Ray unchanged.

``FieldError`` is what the library raises when a caller's input breaks a rule (a KPI record's CQI out of range,
an unknown source agent, an empty cell list). It is a ``ValueError`` whose ``path`` names the offending field from
the input's root, e.g. ``("records", 3, "cqi")``; the HTTP layer prefixes ``body`` and answers 422 with that JSON
path, the CLI prints ``records.3.cqi: must be in [0, 15]`` and exits 2. It pickles with its attributes, so a Ray
task error's ``cause`` is the same object on the caller's side (``slicing.runtime.ray_util.unwrap``): nobody parses
messages back into paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Path = tuple[str | int, ...]


def dotted(path: Sequence[str | int]) -> str:
    """``("records", 3, "cqi")`` -> ``"records.3.cqi"``."""
    return ".".join(str(p) for p in path)


class FieldError(ValueError):
    """Input at ``path`` breaks a rule; ``message`` says which rule (without the path)."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        self.path: Path = tuple(path)
        self.message = message
        super().__init__(f"{dotted(self.path)}: {message}" if self.path else message)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as (path, message): survives Ray and multiprocessing
        return (type(self), (self.path, self.message))

    def under(self, *prefix: str | int) -> FieldError:
        """The same error seen from a containing input: ``FieldError(("cqi",), m).under("records", 3)``."""
        return type(self)((*prefix, *self.path), self.message)

    def detail(self, root: str = "body") -> dict[str, str]:
        """One entry of a 422 body: ``{"path": "body.records.3.cqi", "msg": ..., "type": "value_error"}``."""
        return {"path": dotted((root, *self.path)) if root else dotted(self.path), "msg": self.message,
                "type": "value_error"}

"""S-NSSAI as operators write it, and the one canonical form the product answers with.

Accepted wherever an S-NSSAI is taken (the scenario catalogue, KPI records, HTTP requests):

- 3GPP's JSON object (TS 29.571 ``Snssai``): ``{"sst": 1, "sd": "000001"}``; ``sst`` an integer 0..255 (not a
  boolean, not a string), ``sd`` optional, six hex digits;
- the string ``SST-SD`` or ``SST``, with SD six hex digits and SST either two hex digits (``01-000001``, TS 23.003's
  hex form, and this product's historical form) or one or three decimal digits (``1-000001``, ``1``, ``128``).
  Two digits are always read as hex: ``10`` is SST 16.

Canonical form (every response, every key): SST as two lower-case hex digits, then ``-`` and SD in lower-case hex
when there is one: ``01-000001``, ``80``. ``as_3gpp`` gives the JSON object back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SD_PATTERN = r"^[0-9A-Fa-f]{6}$"
STRING_PATTERN = r"^([0-9A-Fa-f]{2}|[0-9]|[0-9]{3})(-[0-9A-Fa-f]{6})?$"
_STRING = re.compile(STRING_PATTERN)
_SD = re.compile(SD_PATTERN)
RULE = ("an S-NSSAI: {'sst': 0..255, 'sd': six hex digits (optional)} or a string 'SST-SD' / 'SST' "
        "(SST two hex digits, or one or three decimal digits), e.g. '01-000001', '1-000001', '1'")


def canonical(value: Any) -> str:
    """The canonical string of an S-NSSAI in any accepted form (module doc); a ``ValueError`` saying the rule
    otherwise (callers add the field's path)."""
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"sst", "sd"})
        if extra or "sst" not in value:
            raise ValueError(f"expected {RULE}; got the keys {sorted(value)}")
        sst, sd = value["sst"], value.get("sd")
        if isinstance(sst, bool) or not isinstance(sst, int) or not 0 <= sst <= 255:
            raise ValueError(f"sst must be an integer in 0..255, got {sst!r}")
        if sd is not None and (not isinstance(sd, str) or not _SD.match(sd)):
            raise ValueError(f"sd must be six hex digits, got {sd!r}")
        return _join(sst, sd)
    if not isinstance(value, str) or not _STRING.match(value):
        raise ValueError(f"expected {RULE}; got {value!r}")
    head, _, sd = value.partition("-")
    sst = int(head, 16) if len(head) == 2 else int(head)
    if sst > 255:
        raise ValueError(f"SST must be in 0..255, got {head!r}")
    return _join(sst, sd or None)


def _join(sst: int, sd: str | None) -> str:
    return f"{sst:02x}" if sd is None else f"{sst:02x}-{sd.lower()}"


def as_3gpp(snssai: str) -> dict[str, Any]:
    """``{"sst": int, "sd": str}`` (``sd`` only when there is one) of an S-NSSAI in any accepted string form."""
    head, _, sd = canonical(snssai).partition("-")
    return {"sst": int(head, 16)} | ({"sd": sd} if sd else {})

"""``slicing bench export``: read every cell's RRMPolicyRatio of one period over HTTP on loopback (target: 100k cells
in <= 10 s), as the streamed NDJSON export, the Arrow IPC export and a walk over ``GET /v1/allocations`` pages.

Each read is timed from the request to the last byte, by a client in this process, against the service
``LocalService`` started on 127.0.0.1; every form is checked to hold every cell of the same period.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

Log = Callable[[str], None]


def bench_export(base_url: str, n_cells: int, page_limit: int = 10_000, log: Log = print) -> dict:
    import pyarrow as pa
    import requests

    session = requests.Session()
    out: dict = {"cells": n_cells}
    t0 = time.perf_counter()
    r = session.get(base_url + "/v1/allocations/export", timeout=300)
    body = r.content
    out["ndjson_s"] = round(time.perf_counter() - t0, 3)
    r.raise_for_status()
    period = int(r.headers["x-period"])
    lines = body.count(b"\n")
    if lines != n_cells:
        raise RuntimeError(f"NDJSON export: {lines} lines for {n_cells} cells")
    first = json.loads(body[:body.index(b"\n")])
    out |= {"period": period, "ndjson_mb": round(len(body) / 1e6, 1), "slices_per_cell_0": len(first["slices"])}
    log(f"NDJSON export of {n_cells} cells (period {period}): {out['ndjson_s']} s, {out['ndjson_mb']} MB")

    t0 = time.perf_counter()
    r = session.get(base_url + f"/v1/allocations/export?period={period}",
                    headers={"Accept": "application/vnd.apache.arrow.stream"}, timeout=300)
    body = r.content
    out["arrow_s"] = round(time.perf_counter() - t0, 3)
    r.raise_for_status()
    table = pa.ipc.open_stream(body).read_all()
    if table.column("cell_id").to_numpy().max() != n_cells - 1:
        raise RuntimeError("Arrow export: not every cell is in it")
    out |= {"arrow_mb": round(len(body) / 1e6, 1), "arrow_rows": table.num_rows}
    log(f"Arrow IPC export: {out['arrow_s']} s, {out['arrow_mb']} MB, {table.num_rows} (cell, slice) rows")

    t0 = time.perf_counter()
    url, cells, pages = f"/v1/allocations?limit={page_limit}&period={period}", 0, 0
    while url:
        r = session.get(base_url + url, timeout=300)
        r.raise_for_status()
        page = r.json()
        if page["period"] != period:
            raise RuntimeError(f"page {pages}: period {page['period']}, the walk started in {period}")
        cells += len(page["cells"])
        pages += 1
        url = page["next"]
    out["pages_s"] = round(time.perf_counter() - t0, 3)
    if cells != n_cells:
        raise RuntimeError(f"paged walk: {cells} cells for {n_cells}")
    out |= {"pages": pages, "page_limit": page_limit, "target_s": 10.0}
    log(f"paged walk ({pages} pages of {page_limit}): {out['pages_s']} s")
    return out

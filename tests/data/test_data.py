"""slicing.data: history window, sample table, augmentation, Parquet I/O, behaviour policy, collection."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slicing.config import HISTORY, Scenario, Topology
from slicing.data.augment import SATISFIED, augment
from slicing.data.collect import collect, explore_policy
from slicing.data.history import History
from slicing.data.parquet import DataFileError, read_metadata, read_samples, write_samples
from slicing.data.samples import ALL_COLUMNS, FEATURE_COLUMNS, Samples, samples_from_report
from slicing.sim.simulator import KpiReport, Simulator

N, S = 6, 4


def make_report(period: int, gen: np.random.Generator, n: int = N, s: int = S) -> KpiReport:
    """A KpiReport with users = 100 * period + 10 * cell + slice (so the history order is visible)."""
    mask = gen.random((n, s)) < 0.75
    mask[:, 0] = True
    cells = np.arange(n)[:, None]
    slices = np.arange(s)[None, :]
    users = np.where(mask, 100.0 * period + 10 * cells + slices, 0.0)
    cqi = np.where(mask, (period % 15) + 0.5, 0.0)
    share = np.where(mask, gen.random((n, s)), 0.0)
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1.0)
    r = np.where(mask, np.clip(gen.random((n, s)) * 1.3, 0.0, 1.0), 0.0)
    tp = np.where(mask, gen.random((n, s)) * 3.0, 0.0)
    delay = np.where(mask, 20.0 + 100.0 * gen.random((n, s)), 0.0)
    delay[0, 0] = np.inf  # a starved slice
    return KpiReport(
        period=period, cell_ids=np.arange(100, 100 + n, dtype=np.int64), mask=mask, share=share,
        users=users, cqi=cqi, prb_util=share * 0.9, offered_mbps=users * 1.5,
        throughput_mbps=tp, delay_ms=delay, r=r,
    )


def make_samples(seed: int = 0, periods: int = 4) -> Samples:
    gen = np.random.default_rng(seed)
    z = gen.random((N, S, 2 * HISTORY + 2)).astype(np.float32)
    return Samples.concat([samples_from_report(make_report(p, gen), z, np.arange(1, S + 1)) for p in range(periods)])


# ---------------------------------------------------------------- history


def test_history_order_and_ready() -> None:
    gen = np.random.default_rng(1)
    hist = History(N, S)
    assert hist.count == 0 and not hist.ready
    for p in range(HISTORY + 3):  # wraps the ring
        hist.push(make_report(p, gen))
        assert hist.count == p + 1
        assert hist.ready == (p + 1 >= HISTORY)
    tp, dl = np.array([2.0, 1.0, 1.5, 0.5]), np.array([100.0, 150.0, 50.0, 30.0])
    z = hist.features(tp, dl)
    assert z.shape == (N, S, 2 * HISTORY + 2) and z.dtype == np.float32
    # slice 0 is always active: users = 100 p + 10 c, periods 3..7 oldest first
    expected = 100.0 * np.arange(3, 3 + HISTORY)[None, :] + 10.0 * np.arange(N)[:, None]
    np.testing.assert_array_equal(z[:, 0, :HISTORY], expected)
    np.testing.assert_array_equal(z[0, 0, HISTORY : 2 * HISTORY], (np.arange(3, 3 + HISTORY) % 15) + 0.5)
    np.testing.assert_array_equal(z[:, :, -2], np.broadcast_to(tp, (N, S)))
    np.testing.assert_array_equal(z[:, :, -1], np.broadcast_to(dl, (N, S)))


def test_history_partial_is_zero_padded_and_state_roundtrip() -> None:
    gen = np.random.default_rng(2)
    hist = History(N, S)
    for p in range(1, 3):
        hist.push(make_report(p, gen))
    assert not hist.ready
    users = hist.users()
    assert np.all(users[:, 0, : HISTORY - 2] == 0)  # not yet filled, oldest slots
    np.testing.assert_array_equal(users[:, 0, -1], 200.0 + 10.0 * np.arange(N))
    for p in range(3, 9):
        hist.push(make_report(p, gen))
    state = hist.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = History(N, S)
    other.load_state_dict(state)
    assert other.count == hist.count and other.ready
    tp, dl = np.ones(S), np.ones(S)
    np.testing.assert_array_equal(other.features(tp, dl), hist.features(tp, dl))
    rep = make_report(9, gen)  # both continue identically after the restore
    hist.push(rep)
    other.push(rep)
    np.testing.assert_array_equal(other.features(tp, dl), hist.features(tp, dl))
    with pytest.raises(ValueError, match="shape"):
        History(N + 1, S).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        hist.push(make_report(0, gen, n=N + 1))


# ---------------------------------------------------------------- samples


def test_samples_from_report_columns() -> None:
    gen = np.random.default_rng(3)
    rep = make_report(7, gen)
    z = gen.random((N, S, 2 * HISTORY + 2)).astype(np.float32)
    smp = samples_from_report(rep, z, np.array([1, 2, 3, 4]))
    assert FEATURE_COLUMNS[1] == "users_h1" and FEATURE_COLUMNS[HISTORY] == f"users_h{HISTORY}"
    assert len(FEATURE_COLUMNS) == 2 * HISTORY + 3
    assert len(smp) == int(rep.mask.sum())
    ci, si = np.nonzero(rep.mask)
    np.testing.assert_array_equal(smp["cell_id"], rep.cell_ids[ci])
    np.testing.assert_array_equal(smp["slice_id"], si + 1)
    np.testing.assert_array_equal(smp["x"], rep.share[ci, si].astype(np.float32))
    np.testing.assert_array_equal(smp.features()[:, 1:], z[ci, si])
    np.testing.assert_array_equal(smp.targets(), rep.r[ci, si].astype(np.float32))
    assert smp.features().shape == (len(smp), 2 * HISTORY + 3) and smp.features().dtype == np.float32
    assert np.all(smp["period"] == 7) and not smp["augmented"].any()
    assert len(Samples.concat([smp, smp])) == 2 * len(smp) and len(Samples.concat([])) == 0


# ---------------------------------------------------------------- augmentation


def test_augmentation_rules() -> None:
    smp = make_samples()
    orig = smp.take(~smp["augmented"])
    out = augment(smp, np.random.default_rng(0))
    n = len(smp)
    # originals first and untouched
    for c in ALL_COLUMNS:
        np.testing.assert_array_equal(out[c][:n], smp[c])
    new = out.take(np.arange(n, len(out)))
    assert new["augmented"].all() and np.all(new["r"] == 1.0)

    rule1 = (orig["r"] < 1) & (orig["throughput_mbps"] > 0) & np.isfinite(orig["delay_ms"])
    rule2 = orig["r"] >= SATISFIED
    assert rule1.sum() > 0 and rule2.sum() > 0 and (~rule1 & ~rule2).sum() > 0  # the data exercises each case
    assert len(new) == int(rule1.sum() + rule2.sum())
    a1 = new.take(np.arange(int(rule1.sum())))
    a2 = new.take(np.arange(int(rule1.sum()), len(new)))

    # rule 1: requirements := achieved, everything else (x, history) unchanged, only r < 1 rows
    src1 = orig.take(rule1)
    np.testing.assert_array_equal(a1["throughput_req_mbps"], src1["throughput_mbps"])
    np.testing.assert_array_equal(a1["delay_req_ms"], src1["delay_ms"])
    np.testing.assert_array_equal(a1["x"], src1["x"])
    np.testing.assert_array_equal(a1.features()[:, 1:-2], src1.features()[:, 1:-2])
    assert np.isinf(orig["delay_ms"]).any() and np.all(np.isfinite(a1["delay_req_ms"]))

    # rule 2: x' in [x, 1], requirements unchanged, only r >= 0.999 rows
    src2 = orig.take(rule2)
    assert np.all(a2["x"] >= src2["x"]) and np.all(a2["x"] <= 1.0)
    assert np.any(a2["x"] > src2["x"])
    np.testing.assert_array_equal(a2.features()[:, 1:], src2.features()[:, 1:])
    np.testing.assert_array_equal(a2["cell_id"], src2["cell_id"])

    # seeded
    again = augment(smp, np.random.default_rng(0))
    np.testing.assert_array_equal(again["x"], out["x"])
    assert np.all(np.isfinite(out.features())) and np.all((out.targets() >= 0) & (out.targets() <= 1))


# ---------------------------------------------------------------- parquet


def write(tmp_path: Path, smp: Samples | None = None) -> Path:
    path = tmp_path / "sub" / "samples.parquet"
    write_samples(smp if smp is not None else make_samples(), path, {"scenario": "unit", "seed": 7})
    return path


def test_parquet_roundtrip(tmp_path: Path) -> None:
    smp = augment(make_samples(), np.random.default_rng(1))
    path = write(tmp_path, smp)
    back = read_samples(path)
    assert len(back) == len(smp)
    for c in ALL_COLUMNS:
        assert back[c].dtype == smp[c].dtype, c
        np.testing.assert_array_equal(back[c], smp[c])
    meta = read_metadata(path)
    assert meta["slicing_schema"] == "kpi-samples/1" and meta["history"] == str(HISTORY)
    assert meta["scenario"] == "unit" and meta["seed"] == "7"
    schema = pq.read_schema(path)
    assert schema.field("x").type == pa.float32() and schema.field("slice_id").type == pa.int16()
    assert schema.field("period").type == pa.int32() and schema.field("augmented").type == pa.bool_()


def rewrite(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_error_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.parquet: file does not exist"):
        read_samples(tmp_path / "nope.parquet")


def test_error_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path)
    rewrite(path, pq.read_table(path).drop_columns(["cqi_h3"]))
    with pytest.raises(DataFileError, match="missing column 'cqi_h3'") as err:
        read_samples(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_error_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path)
    table = pq.read_table(path)
    i = table.schema.get_field_index("delay_req_ms")
    table = table.set_column(i, pa.field("delay_req_ms", pa.string()), table.column(i).cast(pa.string()))
    rewrite(path, table)
    with pytest.raises(DataFileError, match="column 'delay_req_ms' has type string, expected float"):
        read_samples(path)


@pytest.mark.parametrize("content", [b"", b"garbage, not parquet at all" * 10, "truncate"])
def test_error_corrupt(tmp_path: Path, content: bytes | str) -> None:
    path = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    with pytest.raises(DataFileError, match="not a Parquet file or corrupt") as err:
        read_samples(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_error_nan_feature(tmp_path: Path) -> None:
    smp = make_samples()
    users = smp["users_h2"].copy()
    users[3] = np.nan
    path = write(tmp_path, smp.replace(users_h2=users))
    with pytest.raises(DataFileError, match="column 'users_h2' has 1 non-finite"):
        read_samples(path)


def test_error_r_out_of_range(tmp_path: Path) -> None:
    smp = make_samples()
    r = smp["r"].copy()
    r[0] = 1.5
    path = write(tmp_path, smp.replace(r=r))
    with pytest.raises(DataFileError, match=r"column 'r' has 1 value\(s\) outside \[0, 1\]"):
        read_samples(path)


def test_error_schema_version_and_history(tmp_path: Path) -> None:
    path = write(tmp_path)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    rewrite(path, table.replace_schema_metadata({**meta, b"history": b"3"}))
    with pytest.raises(DataFileError, match="history length '3', expected '5'"):
        read_samples(path)
    rewrite(path, table.replace_schema_metadata({**meta, b"slicing_schema": b"kpi-samples/0"}))
    with pytest.raises(DataFileError, match="schema version 'kpi-samples/0'"):
        read_samples(path)
    rewrite(path, table.replace_schema_metadata({}))
    with pytest.raises(DataFileError, match="not a slicing sample file"):
        read_samples(path)


# ---------------------------------------------------------------- behaviour policy


def fake_sim(cell_ids: np.ndarray, mask: np.ndarray, period: int) -> SimpleNamespace:
    return SimpleNamespace(cell_ids=cell_ids, n_slices=mask.shape[1], period=period, slice_mask=lambda: mask)


def test_explore_policy_feasible_and_deterministic() -> None:
    gen = np.random.default_rng(4)
    n = 400
    cell_ids = np.arange(1000, 1000 + n, dtype=np.int64)
    mask = gen.random((n, S)) < 0.6
    mask[:5] = False  # cells with no active slice
    offered = gen.random((n, S)) * 20 * (gen.random((n, S)) < 0.8)
    demand = SimpleNamespace(users=offered / 2, offered_mbps=offered)
    for eps in (0.0, 0.5, 1.0):
        x = explore_policy(fake_sim(cell_ids, mask, 3), demand, eps, seed=11)
        assert x.shape == (n, S) and x.dtype == np.float64
        assert np.all(x >= 0) and np.all(x.sum(axis=1) <= 1 + 1e-12) and np.all(x[~mask] == 0)
        np.testing.assert_array_equal(x, explore_policy(fake_sim(cell_ids, mask, 3), demand, eps, seed=11))
    # epsilon = 0: traffic-proportional over active slices (equal split when none offers traffic)
    x0 = explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.0, seed=11)
    has = mask.any(axis=1)
    np.testing.assert_allclose(x0[has].sum(axis=1), 1.0)
    off = np.where(mask, offered, 0.0)
    pos = off.sum(axis=1) > 0
    np.testing.assert_allclose(x0[pos], off[pos] / off[pos].sum(axis=1, keepdims=True))
    # epsilon = 1: random totals in [0.6, 1]
    x1 = explore_policy(fake_sim(cell_ids, mask, 3), demand, 1.0, seed=11)
    tot = x1[has].sum(axis=1)
    assert np.all(tot >= 0.6 - 1e-12) and np.all(tot <= 1.0 + 1e-12) and tot.std() > 0.05
    # about half the cells explore at epsilon = 0.5, and a different seed or period changes the draw
    xh = explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.5, seed=11)
    frac = np.mean(~np.isclose(xh[pos], x0[pos]).all(axis=1))
    assert 0.35 < frac < 0.65
    assert not np.array_equal(xh, explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.5, seed=12))
    assert not np.array_equal(xh, explore_policy(fake_sim(cell_ids, mask, 4), demand, 0.5, seed=11))
    # per-cell counter RNG: a subset of cells gets exactly the same rows
    sub = np.arange(7, n, 3)
    xs = explore_policy(fake_sim(cell_ids[sub], mask[sub], 3),
                        SimpleNamespace(users=demand.users[sub], offered_mbps=offered[sub]), 0.5, seed=11)
    np.testing.assert_array_equal(xs, xh[sub])


# ---------------------------------------------------------------- collection (needs the simulator)


def small_scenario() -> Scenario:
    return Scenario(name="data-test", seed=3, steps=40, topology=Topology(sites=2))


def test_collect_samples_valid_and_seeded(tmp_path: Path) -> None:
    sc = small_scenario()
    calls: list[tuple[int, int]] = []
    steps = HISTORY + 12
    smp = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=5, progress=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (steps, steps) and len(calls) == steps
    assert len(smp) > 0 and not smp["augmented"].any()
    f = smp.features()
    assert f.shape == (len(smp), 2 * HISTORY + 3) and np.all(np.isfinite(f))
    r = smp.targets()
    assert np.all((r >= 0) & (r <= 1)) and np.all(np.isfinite(r))
    assert np.all((f[:, 0] >= 0) & (f[:, 0] <= 1))
    assert smp["period"].min() == HISTORY and smp["period"].max() == steps - 1
    assert set(np.unique(smp["slice_id"])) <= {s.id for s in sc.slices}
    again = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=5)
    for c in ALL_COLUMNS:
        np.testing.assert_array_equal(again[c], smp[c])
    other = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=6)
    assert not np.array_equal(other["x"], smp["x"]) or len(other) != len(smp)
    aug = collect(sc, steps=steps, epsilon=0.5, augment=True, seed=5)
    assert len(aug) > len(smp) and aug["augmented"].any()
    np.testing.assert_array_equal(aug["x"][: len(smp)], smp["x"])
    assert np.all(np.isfinite(aug.features())) and np.all((aug.targets() >= 0) & (aug.targets() <= 1))
    path = tmp_path / "c.parquet"
    write_samples(aug, path, {"scenario": sc.name, "seed": sc.seed})
    assert len(read_samples(path)) == len(aug)


def test_collect_history_matches_reports() -> None:
    """z of a row at period t holds the users/CQI of the same (cell, slice) at t-H .. t-1."""
    sc = small_scenario()
    steps = HISTORY + 3
    smp = collect(sc, steps=steps, epsilon=0.3, augment=False, seed=1)
    sim = Simulator(sc)
    reports = []
    for _ in range(steps):
        reports.append(sim.step(explore_policy(sim, sim.demand(), 0.3, 1)))
    users = np.stack([rep.users for rep in reports]).astype(np.float32)  # [T, N, S]
    cqi = np.stack([rep.cqi for rep in reports]).astype(np.float32)
    col = {sid: j for j, sid in enumerate(np.asarray(sim.slice_ids).tolist())}
    row = {int(c): i for i, c in enumerate(sim.cell_ids)}
    ci = np.array([row[int(c)] for c in smp["cell_id"]])
    si = np.array([col[int(s)] for s in smp["slice_id"]])
    t = smp["period"].astype(int)
    for h in range(HISTORY):
        lag = HISTORY - h
        np.testing.assert_array_equal(smp[f"users_h{h + 1}"], users[t - lag, ci, si])
        np.testing.assert_array_equal(smp[f"cqi_h{h + 1}"], cqi[t - lag, ci, si])
    np.testing.assert_array_equal(smp["x"], np.stack([rep.share for rep in reports])[t, ci, si].astype(np.float32))

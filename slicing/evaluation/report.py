"""The comparison table printed by `slicing evaluate` and `slicing demo`."""

from __future__ import annotations

from rich.table import Table

COLUMNS = [("mean_satisfaction", "mean r"), ("p_satisfied", "P(r>=0.999)"), ("mean_utility", "utility"),
           ("max_share_sum", "max sum x")]


def comparison_table(summary: dict) -> Table:
    t = Table(title=f"{summary['scenario']}: {summary['cells']} cells, {summary['steps']} periods, "
                    f"estimator MAE {summary['estimator']['mae']:.4f} on held-out samples")
    t.add_column("scheme")
    for phase in ("H1", "H2"):
        for _, label in COLUMNS:
            t.add_column(f"{phase} {label}", justify="right")
    best = {(p, k): max(m[p][k] for m in summary["schemes"].values()) for p in ("H1", "H2")
            for k in ("mean_satisfaction", "p_satisfied", "mean_utility")}
    for name, m in summary["schemes"].items():
        cells = []
        for phase in ("H1", "H2"):
            for key, _ in COLUMNS:
                v = m[phase][key]
                text = f"{v:.4f}"
                cells.append(f"[bold]{text}[/bold]" if best.get((phase, key)) == v else text)
        t.add_row(name, *cells)
    return t

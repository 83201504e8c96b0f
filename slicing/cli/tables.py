"""The comparison table printed by `slicing evaluate` and `slicing demo`."""

from __future__ import annotations

from rich.table import Table

COLUMNS = [("mean_satisfaction", "mean r"), ("p_satisfied", "P(r>=0.999)"), ("mean_utility", "utility"),
           ("max_share_sum", "max sum x")]


def comparison_table(summary: dict) -> Table:
    """One row per (scheme, phase); the best value of each column within a phase in bold."""
    t = Table(title=f"{summary['scenario']}: {summary['cells']} cells, {summary['steps']} periods, "
                    f"estimator MAE {summary['estimator']['mae']:.4f} (held out)")
    t.add_column("phase")
    t.add_column("scheme")
    for _, label in COLUMNS:
        t.add_column(label, justify="right")
    for phase in ("H1", "H2"):
        rows = {name: m[phase] for name, m in summary["schemes"].items()}
        best = {k: max(r[k] for r in rows.values()) for k, _ in COLUMNS[:3]}
        for i, (name, m) in enumerate(rows.items()):
            cells = [f"[bold]{m[k]:.4f}[/bold]" if best.get(k) == m[k] else f"{m[k]:.4f}" for k, _ in COLUMNS]
            t.add_row(phase if i == 0 else "", name, *cells, end_section=i == len(rows) - 1)
    return t

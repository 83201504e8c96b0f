"""The report of `slicing reproduce`: one Markdown file and one self-contained HTML page (figures embedded).

Per paper: what was run (settings, seeds, wall time), a table *claim | where | paper | ours (mean ± std over seeds)
| same direction? (seeds holding)*, and our figures, each under the paper figure it mirrors. On top, an overview
figure (claims holding per paper) and table.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

BUDGET_NOTE = {
    "full": "Paper-length settings (each experiment's documented defaults).",
    "quick": "Quick budget: every experiment cut down to fit all papers in about 15 minutes on 2 cores. The "
             "directions are meaningful only where the seeds agree; the levels are not the paper-length ones.",
    "tiny": "Tiny budget (the tests' wiring check): the numbers mean nothing.",
}


def _overview_plot(results: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    held = [sum(c["holds"] for c in results[n].claims) for n in names]
    total = [len(results[n].claims) for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(names, total, color="#d9d9d9", label="claims")
    ax.bar(names, held, color="#2b8cbe", label="same direction as the paper (mean over seeds)")
    for i, (h, t) in enumerate(zip(held, total, strict=True)):
        ax.text(i, t + 0.05, f"{h}/{t}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("claims")
    ax.set_ylim(0, max(total, default=1) + 1)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_title("Each paper's headline claims: do ours point the same way?")
    fig.tight_layout()
    path = out / "claims_overview.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rel(path: str | Path, out: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out.resolve())


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items())


def _verdict(c: dict[str, Any]) -> str:
    return f"{'yes' if c['holds'] else 'no'} ({c['seeds_holding']}/{c['seeds']} seeds)"


def write_markdown(results: dict[str, Any], papers: dict[str, Any], budget: str, out: Path, wall_s: float,
                   overview: Path) -> Path:
    lines = ["# Reproductions: each paper's headline beside ours", "",
             f"{BUDGET_NOTE[budget]} Total wall time {wall_s:.0f} s.", "",
             "A claim's *ours* is the mean ± standard deviation over the seeds; *same direction* compares that mean "
             "with the paper's statement, and counts the seeds that hold it on their own.", "",
             f"![claims overview]({_rel(overview, out)})", "",
             "| paper | claims in the same direction | seeds | wall time |", "|---|---|---|---|"]
    for n, r in results.items():
        held = sum(c["holds"] for c in r.claims)
        lines.append(f"| {n} | {held} of {len(r.claims)} | {', '.join(map(str, r.seeds))} | {r.wall_s:.0f} s |")
    for n, r in results.items():
        p = papers[n]
        lines += ["", f"## {p.title}", ""]
        if p.note:
            lines += [p.note, ""]
        lines += [f"Settings ({budget}): {_settings_text(r.settings)}. Seeds {', '.join(map(str, r.seeds))}; "
                  f"{r.wall_s:.0f} s.", "",
                  "| claim | where | paper | ours | same direction? |", "|---|---|---|---|---|"]
        for c in r.claims:
            lines.append(f"| {c['claim']} | {c['where']} | {c['paper']} | {c['ours']} | {_verdict(c)} |")
        for f in r.figures:
            lines += ["", f"![{f['mirrors']}]({_rel(f['path'], out)})", "", f"*Mirrors the paper's {f['mirrors']}*"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _img(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
.yes{color:#1a7f37;font-weight:600}.no{color:#b42318;font-weight:600}figure{margin:1.5em 0}
figcaption{font-style:italic;color:#555}.note{color:#555}"""


def write_html(results: dict[str, Any], papers: dict[str, Any], budget: str, out: Path, wall_s: float,
               overview: Path) -> Path:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>slicing: reproductions</title>",
             f"<style>{CSS}</style></head><body>", "<h1>Reproductions: each paper's headline beside ours</h1>",
             f"<p>{e(BUDGET_NOTE[budget])} Total wall time {wall_s:.0f} s.</p>",
             "<p class='note'>A claim's <em>ours</em> is the mean ± standard deviation over the seeds; <em>same "
             "direction</em> compares that mean with the paper's statement and counts the seeds that hold it.</p>",
             f"<figure>{_img(overview, 'claims overview')}</figure>",
             "<table><tr><th>paper</th><th>claims in the same direction</th><th>seeds</th><th>wall time</th></tr>"]
    for n, r in results.items():
        held = sum(c["holds"] for c in r.claims)
        parts.append(f"<tr><td><a href='#{n}'>{e(n)}</a></td><td>{held} of {len(r.claims)}</td>"
                     f"<td>{e(', '.join(map(str, r.seeds)))}</td><td>{r.wall_s:.0f} s</td></tr>")
    parts.append("</table>")
    for n, r in results.items():
        p = papers[n]
        parts += [f"<h2 id='{n}'>{e(p.title)}</h2>"]
        if p.note:
            parts.append(f"<p class='note'>{e(p.note)}</p>")
        parts.append(f"<p>Settings ({e(budget)}): <code>{e(_settings_text(r.settings))}</code>. Seeds "
                     f"{e(', '.join(map(str, r.seeds)))}; {r.wall_s:.0f} s.</p>")
        parts.append("<table><tr><th>claim</th><th>where</th><th>paper</th><th>ours</th><th>same direction?</th></tr>")
        for c in r.claims:
            cls = "yes" if c["holds"] else "no"
            parts.append(f"<tr><td>{e(c['claim'])}</td><td>{e(c['where'])}</td><td>{e(c['paper'])}</td>"
                         f"<td>{e(c['ours'])}</td><td class='{cls}'>{e(_verdict(c))}</td></tr>")
        parts.append("</table>")
        for f in r.figures:
            parts.append(f"<figure>{_img(f['path'], f['mirrors'])}<figcaption>Mirrors the paper's "
                         f"{e(f['mirrors'])}</figcaption></figure>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


def write_report(results: dict[str, Any], papers: dict[str, Any], budget: str, out: Path,
                 wall_s: float) -> dict[str, Path]:
    """report.md, report.html and claims_overview.png under ``out``; also summary.json (the claims)."""
    overview = _overview_plot(results, out)
    md = write_markdown(results, papers, budget, out, wall_s, overview)
    page = write_html(results, papers, budget, out, wall_s, overview)
    (out / "summary.json").write_text(json.dumps({n: r.json() for n, r in results.items()}, indent=2))
    return {"markdown": md, "html": page}

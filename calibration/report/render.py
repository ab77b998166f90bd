"""Render a calibration report (``calibration.report.make_report``'s dict, or a saved report.json) as JSON,
Markdown and a console table; ``calibration.report.html`` makes the self-contained HTML page from the same readers.
Variants and the recommendation are read as typed records (``plan.Variant``,
``recommend.Recommendation``); the description sections (evaluation, environment, latency input) are shown
as they are. JSON and Markdown need nothing beyond numpy; the HTML needs matplotlib (``segedge[report]``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from calibration.report.html import render_html
from calibration.report.readers import busy, labelled, number, recommendation, rows, timed_how, variants
from sdk.core.result import default_palette

def _clean(value: Any) -> Any:
    """NaN/inf -> None, recursively, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def format_table(report: dict) -> str:
    """The console table plus the recommendation, as ``segedge report`` prints it."""
    table = rows(report)
    cols = list(table[0]) if table else []
    width = {c: max(len(c), *(len(r[c]) for r in table)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols).rstrip()]
    lines += ["  ".join(r[c].ljust(width[c]) for c in cols).rstrip() for r in table]
    ev = report["evaluation"]
    ref = ev["reference_metrics"]
    what = (f"mIoU on {ev['kind']} {ev.get('split') or ''} ({ev['images']} images), FP32 reference "
            f"{100 * ref['miou']:.2f}" if labelled(report) else
            f"UNLABELLED set ({ev['images']} images): agreement with FP32 only, no mIoU")
    lines.insert(0, what)
    for s in report["skipped"]:
        lines.append(f"skipped {s['name']}: {s['reason']}")
    all_variants = variants(report)
    for v in all_variants:
        for note in v.notes:
            if "identical" in note:
                lines.append(f"note {v.name}: {note}")
    load = busy(all_variants)
    if load and load["busy_pct"] > 10:
        lines.append(f"warning: other processes kept {load['busy_pct']:.0f}% of the CPUs busy just before timing: "
                     "absolute latencies are inflated, ratios (measured side by side) hold")
    lines.append(recommendation_text(report))
    return "\n".join(lines)


def recommendation_text(report: dict) -> str:
    rec = recommendation(report)
    if not rec.variant:
        return f"recommendation: none ({rec.reason}; criterion: {rec.criterion})"
    speed = f", {rec.speedup_vs_fp32:.2f}x the FP32 p50" if rec.speedup_vs_fp32 else ""
    metric = rec.metric_label
    text = (f"recommendation: {rec.variant} -- fastest with {rec.criterion}: p50 "
            f"{rec.latency_p50_ms:.1f} ms{speed}, {metric} {rec.value_points:+.2f} points\n"
            f"  reproduce: {rec.command}\n  run: {rec.run_with}")
    if rec.within_5_percent:
        text += f"\n  within 5% of its p50 (measurement noise here): {', '.join(rec.within_5_percent)}"
    for p in rec.passed_over:
        text += (f"\n  faster but over the limit: {p['variant']} ({p['latency_p50_ms']:.1f} ms, {metric} "
                 f"{number(p.get(rec.metric), '+.2f')} points)")
    for p in rec.not_timed:
        text += f"\n  not timed here: {p['variant']} ({metric} {number(p.get(rec.metric), '+.2f')} points): {p['why']}"
    return text


def render_markdown(report: dict) -> str:
    ev = report["evaluation"]
    table = rows(report)
    cols = list(table[0]) if table else []
    md = [f"# segedge report: {report['model']['variant']} from `{report['source']['path']}`", "",
          f"- created: {report['created']}", f"- calibration: {report['calibration']['description']}",
          f"- evaluation: {ev['kind']} {ev.get('split') or ''} `{ev['path']}`, {ev['images']} images"
          + ("" if ev["labelled"] else " (**unlabelled: agreement with FP32 only**)"),
          f"- machine: {report['environment']['cpu_model']}, {report['environment']['usable_cpus']} CPUs, "
          f"flags {' '.join(report['environment']['cpu_key_flags'])}", "", "## Recommendation", "", "```",
          recommendation_text(report), "```", "", "## Variants", "",
          "| " + " | ".join(c or "notes" for c in cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r[c].replace("|", "/") for c in cols) + " |" for r in table]
    if report["skipped"]:
        md += ["", "## Not in the grid", ""] + [f"- {s['name']}: {s['reason']}" for s in report["skipped"]]
    md += ["", "## Commands", ""] + [f"- {v.name}: `{v.command}`" for v in variants(report) if v.command]
    md += ["", f"Pictures: `report.html`. Latency: {report['latency_input']['what']}; timed "
           f"{timed_how(report['latency_input'])}."]
    return "\n".join(md) + "\n"


def write_report(report: dict, out: Path, examples: list[dict], manifest) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out``; returns their paths."""
    out = Path(out)
    report = _clean(report)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    report["files"] = {k: str(p) for k, p in paths.items()}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(render_markdown(report))
    palette = np.asarray(manifest.palette or default_palette(manifest.num_classes), np.uint8)
    paths["html"].write_text(render_html(report, examples, palette))
    return paths

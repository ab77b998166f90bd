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

from calibration.report.plan import Variant
from calibration.report.recommend import Recommendation

# -------------------------------------------------------------------------------------------------------- helpers
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


def _f(value: Any, fmt: str, scale: float = 1.0) -> str:
    return format(value * scale, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _labelled(report: dict) -> bool:
    return bool(report["evaluation"]["labelled"])


def _variants(report: dict) -> list[Variant]:
    return [Variant.from_dict(v) for v in report["variants"]]


def _rec(report: dict) -> Recommendation:
    return Recommendation.from_dict(report["recommendation"])


def _busy(variants: list[Variant]) -> dict | None:
    """Other processes' CPU load sampled just before timing (the same sample for every timed variant)."""
    return next((v.cost.other_load_before_timing for v in variants if v.cost.other_load_before_timing), None)


def rows(report: dict) -> list[dict[str, str]]:
    """One dict of display strings per variant (the table every format shows)."""
    labelled = _labelled(report)
    batch = report["latency_input"]["options"]["batch"]
    rec = _rec(report).variant
    out = []
    for v in _variants(report):
        a, c = v.accuracy, v.cost
        lat = c.latency_ms or {}
        fps = c.throughput_fps or {}
        tags = ("recommended " if v.name == rec else "") + ("pareto" if v.pareto else "")
        row = {"variant": v.name, "backend": v.backend, "precision": v.precision, "method": v.method or "-",
               "preset": v.preset, "scale": f"{v.scale:g}", "merge": v.token_merge}
        if labelled:
            row.update({"mIoU": _f(a and a.miou, ".2f", 100), "drop pt": _f(a and a.drop_points, "+.2f"),
                        "pix acc": _f(a and a.pixel_accuracy, ".2f", 100)})
        row.update({"agree %": _f(a and a.agreement, ".2f", 100),
                    "p50 ms": _f(lat.get("p50_ms"), ".1f"), "p90 ms": _f(lat.get("p90_ms"), ".1f"),
                    "p99 ms": _f(lat.get("p99_ms"), ".1f"),
                    "img/s b1": _f(fps.get("1"), ".1f"), f"img/s b{batch}": _f(fps.get(str(batch)), ".1f"),
                    "load s": _f(c.memory.get("load_seconds"), ".2f"),
                    "peak RSS MiB": _f(c.memory.get("peak_rss_mib"), ".0f"),
                    "size MiB": _f(c.artifact_bytes, ".1f", 1 / 2**20),
                    "build s": _f(v.build_seconds, ".0f"), "": tags.strip()})
        if v.status != "built":
            row[""] = f"FAILED: {v.error}"
        elif c.latency_ms is None and c.latency_note:
            row[""] = (row[""] + " " + c.latency_note).strip()
        out.append(row)
    return out


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
            f"{100 * ref['miou']:.2f}" if _labelled(report) else
            f"UNLABELLED set ({ev['images']} images): agreement with FP32 only, no mIoU")
    lines.insert(0, what)
    for s in report["skipped"]:
        lines.append(f"skipped {s['name']}: {s['reason']}")
    variants = _variants(report)
    for v in variants:
        for note in v.notes:
            if "identical" in note:
                lines.append(f"note {v.name}: {note}")
    busy = _busy(variants)
    if busy and busy["busy_pct"] > 10:
        lines.append(f"warning: other processes kept {busy['busy_pct']:.0f}% of the CPUs busy just before timing: "
                     "absolute latencies are inflated, ratios (measured side by side) hold")
    lines.append(recommendation_text(report))
    return "\n".join(lines)


def recommendation_text(report: dict) -> str:
    rec = _rec(report)
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
                 f"{_f(p.get(rec.metric), '+.2f')} points)")
    for p in rec.not_timed:
        text += f"\n  not timed here: {p['variant']} ({metric} {_f(p.get(rec.metric), '+.2f')} points): {p['why']}"
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
    md += ["", "## Commands", ""] + [f"- {v.name}: `{v.command}`" for v in _variants(report) if v.command]
    md += ["", f"Pictures: `report.html`. Latency: {report['latency_input']['what']}."]
    return "\n".join(md) + "\n"


def write_report(report: dict, out: Path, examples: list[dict], manifest) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out``; returns their paths."""
    from calibration.report.html import render_html
    from sdk.core.result import default_palette

    out = Path(out)
    report = _clean(report)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    report["files"] = {k: str(p) for k, p in paths.items()}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(render_markdown(report))
    palette = np.asarray(manifest.palette or default_palette(manifest.num_classes), np.uint8)
    paths["html"].write_text(render_html(report, examples, palette))
    return paths

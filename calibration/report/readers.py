"""How every output format reads a report (``make_report``'s dict, or a saved report.json): the variants and the
recommendation as typed records (``plan.Variant``, ``recommend.Recommendation``), numbers as display strings, and
the table of variants every format shows. ``render`` (JSON, Markdown, console), ``html`` and ``figures`` share
these, so a format never reads the JSON by its own string keys.
"""
from __future__ import annotations

import math
from typing import Any

from calibration.report.plan import Variant
from calibration.report.recommend import Recommendation


def number(value: Any, fmt: str, scale: float = 1.0) -> str:
    """``value * scale`` in ``fmt``, or "-" for a missing or non-finite number."""
    return format(value * scale, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def labelled(report: dict) -> bool:
    """The evaluation set had labels (mIoU), else agreement with FP32 is the only accuracy."""
    return bool(report["evaluation"]["labelled"])


def variants(report: dict) -> list[Variant]:
    return [Variant.from_dict(v) for v in report["variants"]]


def recommendation(report: dict) -> Recommendation:
    return Recommendation.from_dict(report["recommendation"])


def busy(variants: list[Variant]) -> dict | None:
    """Other processes' CPU load sampled just before timing (the same sample for every timed variant)."""
    return next((v.cost.other_load_before_timing for v in variants if v.cost.other_load_before_timing), None)


def rows(report: dict) -> list[dict[str, str]]:
    """One dict of display strings per variant (the table every format shows)."""
    is_labelled = labelled(report)
    batch = report["latency_input"]["options"]["batch"]
    rec = recommendation(report).variant
    out = []
    for v in variants(report):
        a, c = v.accuracy, v.cost
        lat = c.latency_ms or {}
        fps = c.throughput_fps or {}
        tags = ("recommended " if v.name == rec else "") + ("pareto" if v.pareto else "")
        row = {"variant": v.name, "backend": v.backend, "precision": v.precision, "method": v.method or "-",
               "preset": v.preset, "scale": f"{v.scale:g}", "merge": v.token_merge}
        if is_labelled:
            row.update({"mIoU": number(a and a.miou, ".2f", 100), "drop pt": number(a and a.drop_points, "+.2f"),
                        "pix acc": number(a and a.pixel_accuracy, ".2f", 100)})
        row.update({"agree %": number(a and a.agreement, ".2f", 100),
                    "p50 ms": number(lat.get("p50_ms"), ".1f"), "p90 ms": number(lat.get("p90_ms"), ".1f"),
                    "p99 ms": number(lat.get("p99_ms"), ".1f"),
                    "img/s b1": number(fps.get("1"), ".1f"), f"img/s b{batch}": number(fps.get(str(batch)), ".1f"),
                    "load s": number(c.memory.get("load_seconds"), ".2f"),
                    "peak RSS MiB": number(c.memory.get("peak_rss_mib"), ".0f"),
                    "size MiB": number(c.artifact_bytes, ".1f", 1 / 2**20),
                    "build s": number(v.build_seconds, ".0f"), "": tags.strip()})
        if v.status != "built":
            row[""] = f"FAILED: {v.error}"
        elif c.latency_ms is None and c.latency_note:
            row[""] = (row[""] + " " + c.latency_note).strip()
        out.append(row)
    return out


def timed_how(latency_input: dict) -> str:
    """How the variants were isolated while timed: the report's record (``sdk.timing.isolated``), or, for reports
    written before it was recorded, what the code did then (one process, alternating run by run, with a pause)."""
    how = latency_input.get("isolation")
    if isinstance(how, dict) and how.get("text"):
        return str(how["text"])
    pause = (latency_input.get("options") or {}).get("pause_s")
    return f"all variants in one process, alternating run by run, a {pause} s pause before each run"

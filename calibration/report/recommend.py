"""The report's verdict: the Pareto front of latency vs quality, and the fastest variant within the largest allowed
mIoU drop (labelled set) or pixel disagreement with FP32 (unlabelled set)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from calibration.report.plan import Variant


@dataclass(kw_only=True)
class Recommendation:
    """variant None: nothing measured meets ``criterion`` (``reason`` says so). metric: "drop_points" (labelled) or
    "disagreement_points" (unlabelled). passed_over: faster variants over the limit; not_timed: built but not timed
    here (so not eligible); within_5_percent: variants within this machine's noise of the recommended p50."""

    criterion: str
    max_drop_points: float
    metric: str
    variant: str | None = None
    reason: str | None = None
    command: str | None = None
    run_with: str | None = None
    latency_p50_ms: float | None = None
    value_points: float | None = None
    speedup_vs_fp32: float | None = None
    passed_over: list[dict] = field(default_factory=list)
    not_timed: list[dict] = field(default_factory=list)
    within_5_percent: list[str] = field(default_factory=list)

    @property
    def metric_label(self) -> str:
        return "mIoU drop" if self.metric == "drop_points" else "disagreement"

    @classmethod
    def from_dict(cls, d: dict) -> "Recommendation":
        return cls(**d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.variant is None:
            return {k: d[k] for k in ("criterion", "max_drop_points", "metric", "variant", "reason")}
        d.pop("reason")
        if not self.within_5_percent:
            d.pop("within_5_percent")
        return d


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the points (latency, quality) that no other point beats on both (lower latency, higher quality);
    sorted by latency."""
    front = []
    for name, (lat, q) in points.items():
        dominated = any((l2 <= lat and q2 >= q) and (l2 < lat or q2 > q) for n2, (l2, q2) in points.items()
                        if n2 != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def recommend(variants: list[Variant], *, max_drop: float, labelled: bool,
              reference_name: str | None) -> Recommendation:
    """The fastest variant (latency p50) whose mIoU drop (labelled) or pixel disagreement with FP32 (unlabelled)
    is at most ``max_drop`` points; with why the faster ones were passed over."""
    key = "drop_points" if labelled else "disagreement_points"
    criterion = (f"mIoU drop vs FP32 <= {max_drop:g} points" if labelled else
                 f"pixels disagreeing with FP32 <= {max_drop:g}% (unlabelled set: agreement, not mIoU)")
    rec = Recommendation(criterion=criterion, max_drop_points=max_drop, metric=key)

    def points(v: Variant) -> float | None:
        return v.accuracy.points(key) if v.accuracy else None

    timed = sorted((v for v in variants if v.timed), key=lambda v: v.cost.p50_ms)
    ok = [v for v in timed if (points(v) if points(v) is not None else float("inf")) <= max_drop + 1e-9]
    if not ok:
        rec.reason = "no measured variant meets the criterion"
        return rec
    best = ok[0]
    ref = next((v for v in variants if v.name == reference_name and v.timed), None)
    p50 = best.cost.p50_ms
    rec.variant, rec.command, rec.run_with, rec.latency_p50_ms = best.name, best.command, best.run_with, p50
    rec.value_points = points(best)
    rec.speedup_vs_fp32 = (ref.cost.p50_ms / p50) if ref else None
    rec.passed_over = [{"variant": v.name, "latency_p50_ms": v.cost.p50_ms, key: points(v)}
                       for v in timed if v.cost.p50_ms < p50]
    rec.not_timed = [{"variant": v.name, key: points(v), "why": v.cost.latency_note}
                     for v in variants if v.status == "built" and not v.timed]
    rec.within_5_percent = [v.name for v in ok[1:] if v.cost.p50_ms <= 1.05 * p50]
    return rec


def choose_int8(variants: list[Variant], recommendation: Recommendation, key: str) -> Variant | None:
    """The INT8 variant the pictures compare with FP32: the recommended one if INT8, else the most accurate."""
    built = [v for v in variants if v.status == "built" and v.precision == "int8" and v.accuracy]
    rec = next((v for v in built if v.name == recommendation.variant), None)
    return rec or (min(built, key=lambda v: (v.accuracy.points(key) or 0.0, v.name)) if built else None)

"""The training-free speed menu's axes: input scale and token merging, and the rule that prunes INT8 builds.

- Input scale (``--scales 1.0,0.75,0.5``): SegFormer has no positional encoding, so the same weights run at any
  resolution. A scale s exports the network at ``round(s * H) x round(s * W)`` of the frame (``export_onnx(size_hw=)``):
  frames are resized to it by the shared preprocessing, and the mask head still returns the frame's own size.
- Token merging (``--token-merges none,2x2``): ``converters.token_merge`` specs.
- Pruning: a menu point is (scale, token merge); its FP32 artifact is cheap (an export, an evaluation, a timing),
  its INT8 builds are not (calibration, per-region trials). INT8 never regains accuracy, so only the points whose
  FP32 is within the budget and on the FP32 Pareto front (no other point both faster and more accurate) get INT8
  variants: ``prune_for_int8``. The FP32 of every point is still measured and shown.
"""
from __future__ import annotations

from dataclasses import dataclass

from converters.token_merge_spec import TokenMerge, parse_token_merge
from sdk.core.errors import InputError
from sdk.core.preprocess import STRIDE

DEFAULT_SCALES = (1.0, 0.75, 0.5)
DEFAULT_TOKEN_MERGES = ("none", "2x2")


def parse_scales(text: str | tuple | list) -> tuple[float, ...]:
    """"1.0,0.75,0.5" -> (1.0, 0.75, 0.5); each in (0, 2], distinct."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items if str(s).strip())
    except ValueError:
        raise InputError(f"scales: expected comma-separated numbers like 1.0,0.75,0.5, got {text!r}") from None
    if not scales or any(not 0 < s <= 2 for s in scales) or len(set(scales)) != len(scales):
        raise InputError(f"scales: expected distinct numbers in (0, 2], got {text!r}")
    return scales


def parse_token_merges(text: str | tuple | list) -> tuple[TokenMerge, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    merges = tuple(parse_token_merge(s.strip()) for s in items if s.strip())
    if not merges or len(set(merges)) != len(merges):
        raise InputError(f"token merges: expected distinct specs like none,2x2, got {text!r}")
    return merges


def scaled_size_hw(frame_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """The network input for ``scale`` of a frame of ``frame_hw``; both sides at least ``STRIDE`` (32)."""
    h, w = (int(round(scale * v)) for v in frame_hw)
    if min(h, w) < STRIDE:
        raise InputError(f"scale {scale}: {frame_hw[0]}x{frame_hw[1]} frames would run at {h}x{w}; expected both "
                         f"sides >= {STRIDE}. Use a larger scale.")
    return h, w


@dataclass(frozen=True, kw_only=True)
class MenuPoint:
    scale: float
    merge: TokenMerge

    @property
    def tag(self) -> str:
        """Name part: "" at full scale without merging, else e.g. "s0.75-tm2x2"."""
        parts = [] if self.scale == 1.0 else [f"s{self.scale:g}"]
        if self.merge.enabled:
            parts.append("tm" + self.merge.spec.replace(":", "-").replace("+", ""))
        return "-".join(parts)

    def export_args(self, frame_hw: tuple[int, int]) -> str:
        """The ``segedge export`` options that build this point (beyond checkpoint, graph and output)."""
        h, w = scaled_size_hw(frame_hw, self.scale)
        merge = f" --token-merge {self.merge.spec}" if self.merge.enabled else ""
        return f"--size {h} {w}{merge}"


def menu(scales, merges) -> list[MenuPoint]:
    return [MenuPoint(scale=s, merge=m) for s in parse_scales(scales) for m in parse_token_merges(merges)]


def pareto(points: list[dict], *, cost: str = "p50_ms", loss: str = "drop_points") -> list[dict]:
    """The rows no other row beats on both ``cost`` and ``loss`` (lower is better for both); rows lacking either
    are left out."""
    rows = [p for p in points if p.get(cost) is not None and p.get(loss) is not None]
    return [p for p in rows if not any(q[cost] <= p[cost] and q[loss] <= p[loss] and
                                       (q[cost] < p[cost] or q[loss] < p[loss]) for q in rows)]


def prune_for_int8(fp32_rows: list[dict], max_drop: float) -> list[dict]:
    """The FP32 menu rows worth INT8 builds: within ``max_drop`` and on the FP32 Pareto front (see the module
    docstring). Each row needs ``p50_ms`` and ``drop_points``."""
    return [r for r in pareto(fp32_rows) if r["drop_points"] <= max_drop]

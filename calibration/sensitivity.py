"""Block-by-block sensitivity and the smallest set of float blocks that meets a largest allowed mIoU drop.

For ONNX Runtime / Q/DQ INT8: the quantizable nodes are grouped by block (each encoder block, each patch-merging
layer, the decoder). Sensitivity of a group = the mIoU regained on the evaluation set when that group alone stays
float. Then groups are kept float greedily, most sensitive first, until the drop vs FP32 is at most ``max_drop``
points. If no set meets it, the best model found is kept and marked (``max_drop_met: false``).

Each trial re-runs calibration; a smaller ``probe`` calibration subset and evaluation subset keep the search fast,
and the chosen set is then quantized with the full calibration set and checked on the full evaluation set.
"""
from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path

from tqdm import tqdm

from calibration.evaluate import evaluate
from calibration.quantize_ort import quantizable_nodes, quantize_onnxruntime
from calibration.sets import CalibrationSet
from sdk.core.errors import require
from sdk.core.manifest import read_manifest
from sdk.segmenter import Segmenter

GROUP = re.compile(r"^/(encoder/stages\.\d+/(blocks\.\d+|patch_embed)|decoder)/")


def node_groups(fp32_artifact: Path, target: str) -> dict[str, str]:
    """group name -> a regex (for keep_float) matching that group's quantizable nodes."""
    onnx = require("onnx")
    manifest = read_manifest(fp32_artifact)
    model = onnx.load(str(Path(fp32_artifact) / manifest.model_file))
    groups = sorted({m.group(0) for n in quantizable_nodes(model, target, manifest.graph) if (m := GROUP.match(n))})
    return {g.strip("/"): "^" + re.escape(g) for g in groups}


def _miou(artifact: Path, data: list) -> float:
    with Segmenter.from_artifact(artifact, runtime="onnxruntime") as seg:
        return evaluate(seg, data, progress=False).miou


def quantize_with_max_drop(fp32_artifact: str | Path, calib: CalibrationSet, eval_data: list, output: str | Path,
                           *, max_drop: float, target: str = "onnxruntime", method: str | None = None,
                           reduce_range: bool = False, float_precision: str = "fp32", probe_frames: int = 32,
                           probe_images: int = 20, progress: bool = True) -> Path:
    """INT8 artifact whose mIoU drop on ``eval_data`` ((image, label) pairs) is at most ``max_drop`` points,
    keeping the fewest blocks float. Records the sensitivity table and the chosen set in model.json.
    reduce_range: 7-bit weights, float_precision: the TensorRT target's float parts (``quantize_onnxruntime``), for
    every trial."""
    fp32_artifact, out = Path(fp32_artifact), Path(output)
    recipe = dict(target=target, method=method, reduce_range=reduce_range)
    if target == "tensorrt":
        recipe["float_precision"] = float_precision
    eval_data = list(eval_data)
    fp32_miou = _miou(fp32_artifact, eval_data)
    full = quantize_onnxruntime(fp32_artifact, calib, out, **recipe, progress=progress)
    drop = 100 * (fp32_miou - _miou(full, eval_data))
    table: list[dict] = []
    chosen: list[str] = []
    if drop > max_drop:
        probe_calib = dataclasses.replace(calib, frames=calib.frames[:: max(1, len(calib) // probe_frames)])
        probe = eval_data[:: max(1, len(eval_data) // probe_images)]
        groups = node_groups(fp32_artifact, target)
        with tempfile.TemporaryDirectory(prefix="segedge-sens-", dir=out) as tmp:
            base = _miou(quantize_onnxruntime(fp32_artifact, probe_calib, Path(tmp) / "all", **recipe,
                                              progress=False), probe)
            for name, pattern in tqdm(groups.items(), desc="sensitivity", unit="block", disable=not progress):
                trial = quantize_onnxruntime(fp32_artifact, probe_calib, Path(tmp) / name.replace("/", "_"),
                                             **recipe, keep_float=(pattern,), progress=False)
                table.append({"block": name, "miou_gain_points": 100 * (_miou(trial, probe) - base)})
        table.sort(key=lambda r: -r["miou_gain_points"])
        best = (drop, [])
        for row in table:
            if row["miou_gain_points"] <= 0:
                break
            chosen.append(row["block"])
            keep = tuple(groups[b] for b in chosen)
            quantize_onnxruntime(fp32_artifact, calib, out, **recipe, keep_float=keep,
                                 progress=False)
            drop = 100 * (fp32_miou - _miou(out, eval_data))
            if drop < best[0]:
                best = (drop, list(chosen))
            if drop <= max_drop:
                break
        if drop > max_drop and best[1] != chosen:  # keep the best model found, not the last one tried
            chosen = best[1]
            quantize_onnxruntime(fp32_artifact, calib, out, **recipe,
                                 keep_float=tuple(groups[b] for b in chosen), progress=False)
            drop = best[0]
    manifest = read_manifest(out)
    extra = dict(manifest.extra)
    extra["accuracy_aware"] = {
        "max_drop_points": max_drop, "measured_drop_points": drop, "max_drop_met": drop <= max_drop,
        "fp32_miou": fp32_miou, "eval_images": len(eval_data), "float_blocks": chosen, "sensitivity": table,
    }
    dataclasses.replace(manifest, extra=extra).write(out)
    return out

"""Latency-aware per-region INT8: quantize a region only where this machine runs it faster, within an mIoU budget.

INT8 is not always faster (on CPUs without VNNI ONNX Runtime's INT8 B0 was slower than its FP32: docs/BENCHMARKS.md,
"Design notes"; TensorRT users report the same for transformers). NNCF's accuracy control ignores latency and
ModelOpt's autotune ignores accuracy; this search uses both, measured here:

1. Regions: the quantizable nodes grouped as in ``calibration.sensitivity`` (``granularity="block"``: each
   patch-merging layer, each encoder block, the decoder) or per stage (``"stage"``: a stage's patch merging and
   blocks together, and the decoder; 5 regions on any MiT, the cheap search the report runs).
2. Trials, with a small calibration subset: the all-INT8 model, and for each region the model with that region
   alone left float. All of them and the float artifact are timed each alone in a process of its own, in
   alternating rounds (``sdk.timing.isolated``: load hits all alike, and no runtime's spinning threads slow another),
   and scored on a probe subset of the evaluation set.
3. A region stays float when leaving it float is faster by more than ``NOISE`` (2%) of the all-INT8 p50 (its INT8
   does not pay here; "no slower" alone kept regions float on timing noise). Then, while the mIoU drop
   on the full evaluation set exceeds ``max_drop``, the region that regains the most mIoU per millisecond of
   latency it costs is left float too.
4. The chosen model (full calibration set) is timed against the float artifact the same way. If it is not faster,
   or every region ended float, the float artifact is the answer: the output folder holds a copy of it and the
   record says "FP32 wins here" (the FP16/BF16 wording for OpenVINO's default float is the runtime's own choice).
   So the result is never slower than the float artifact of the same backend, as measured on this machine.

Everything measured is recorded in the output's ``model.json`` (``extra.latency_aware``). The entry point is
``calibration.quantize(..., latency_aware=True)`` (``segedge quantize --latency-aware``), which checks the options,
exports a checkpoint, and hands ``latency_aware_search`` its own INT8 build (``keep_float`` regexes), so the recipe
is what ``segedge quantize`` ships. This module never imports ``calibration.int8``.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from calibration.sets import CalibrationSet
from sdk.core.errors import InputError
from sdk.core.manifest import read_manifest

GRANULARITIES = ("block", "stage")
NOISE = 0.02  # share of the all-INT8 p50 below which a region's float-vs-INT8 difference counts as noise
BACKENDS = ("onnxruntime", "openvino")


@dataclass(frozen=True, kw_only=True)
class LatencyAwareOptions:
    """The search's rarely changed knobs (``quantize(latency_aware=LatencyAwareOptions(...))``; True: these defaults).
    granularity: "stage" (5 regions) or "block" (each block, patch merging and the decoder). repeats: timed runs per
    artifact in the side-by-side timing. probe_frames / probe_images: the calibration frames and evaluation images
    the per-region trials use (the chosen model is calibrated and scored on all of them)."""

    granularity: str = "stage"
    repeats: int = 15
    probe_frames: int = 32
    probe_images: int = 10

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise InputError(f"granularity: expected one of {GRANULARITIES}, got {self.granularity!r}")
        for name in ("repeats", "probe_frames", "probe_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name}: expected an int >= 1, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class RegionTrial:
    """One region left float in otherwise-INT8 model: the latency it adds (ms, p50; <= 0: its INT8 does not pay)
    and the mIoU points it regains on the probe images."""

    region: str
    latency_cost_ms: float
    miou_gain_points: float


@dataclass(frozen=True, kw_only=True)
class LatencyAwareResult:
    artifact: Path
    winner: str  # "int8" or "float"
    verdict: str  # one line for people, e.g. "FP32 wins here: ..."
    float_regions: list[str]
    int8_regions: list[str]
    float_p50_ms: float
    int8_p50_ms: float | None
    drop_points: float
    max_drop: float
    trials: list[RegionTrial] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["artifact"] = str(self.artifact)
        return d


def regions(fp32_artifact: Path, backend: str, granularity: str = "stage") -> dict[str, str]:
    """region name -> a regex for ``keep_float`` matching that region's quantizable nodes."""
    from calibration.sensitivity import node_groups

    if granularity not in GRANULARITIES:
        raise InputError(f"granularity: expected one of {GRANULARITIES}, got {granularity!r}")
    groups = node_groups(fp32_artifact, "onnxruntime" if backend == "onnxruntime" else "tensorrt")
    if granularity == "block":
        return groups
    out: dict[str, str] = {}
    for name in groups:
        m = re.match(r"encoder/stages\.\d+", name)
        key = m.group(0) if m else name
        out[key] = "^" + re.escape("/" + key + "/")
    return out


def _float_reference(fp32: Path, backend: str, work: Path, size_hw) -> tuple[Path, dict]:
    """The float artifact INT8 must beat, and its runtime options: the FP32 ONNX artifact in ONNX Runtime, or for
    OpenVINO the static float IR at INT8's size with OpenVINO's default precision."""
    if backend == "onnxruntime":
        return fp32, {"runtime": "onnxruntime"}
    from converters.openvino_export import export_openvino

    return export_openvino(fp32, work / "float-ir", size_hw=size_hw, progress=False), {"runtime": "openvino"}


def p50_side_by_side(artifacts: dict[str, tuple[Path, dict]], image: np.ndarray, repeats: int, *,
                     rounds: int = 3) -> dict[str, float]:
    """p50 ms of each artifact's model call (the preprocessed frame -> mask at the frame's size), each artifact
    alone in a fresh process of its own, in ``rounds`` alternating rounds of about ``repeats / rounds`` runs
    (``sdk.timing.isolated``), so no runtime's spinning threads slow another's runs. ``artifacts``: name ->
    (folder, {"runtime": name, ...runtime options})."""
    from sdk.core.preprocess import preprocess
    from sdk.timing.isolated import artifact_variant, save_input, time_isolated

    with tempfile.TemporaryDirectory(prefix="segedge-timing-") as tmp:
        variants = []
        for name, (path, opts) in artifacts.items():
            options = dict(opts)
            runtime = options.pop("runtime")
            x = preprocess(image, read_manifest(path).preprocess)
            variants.append(artifact_variant(name, path, runtime=runtime, options=options,
                                             pixel_values=save_input(tmp, f"x{len(variants)}", x),
                                             output_hw=image.shape[:2]))
        timed = time_isolated(variants, rounds=rounds, runs=max(2, -(-repeats // rounds)), warmup=2)
    return {name: v["p50_ms"] for name, v in timed["variants"].items()}


def _miou(artifact: Path, opts: dict, data: list) -> float:
    from calibration.evaluate import evaluate
    from sdk.segmenter import Segmenter

    with Segmenter.from_artifact(artifact, **opts) as seg:
        return evaluate(seg, data, progress=False).miou


def check_options(*, backend: str, eval_data: list | None, max_drop: float | None) -> None:
    """What the search needs, checked before any work: an ONNX Runtime or OpenVINO backend and an mIoU budget on
    labelled data."""
    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {BACKENDS} for latency-aware INT8 (TensorRT is timed on the "
                         f"device), got {backend!r}")
    if eval_data is None or max_drop is None:
        raise InputError("latency-aware INT8 (--latency-aware) needs --eval LABELLED and --max-drop POINTS "
                         "(eval_set= and max_drop= in Python): the mIoU budget the float regions are chosen for")
    if max_drop < 0:
        raise InputError(f"max_drop: expected >= 0 mIoU points, got {max_drop}")


Build = Callable[[tuple[str, ...], Path, CalibrationSet], Path]  # (keep_float, output, frames) -> INT8 artifact


def latency_aware_search(fp32_artifact: str | Path, output: str | Path, *, build: Build, backend: str,
                         calib: CalibrationSet, eval_data: list, max_drop: float,
                         options: LatencyAwareOptions = LatencyAwareOptions(), size_hw: tuple[int, int] | None = None,
                         progress: bool = True) -> LatencyAwareResult:
    """FP32 ONNX artifact -> the fastest artifact of ``backend`` on this machine whose mIoU drop on ``eval_data``
    ((image, label) pairs) is at most ``max_drop`` points, written to ``output``: INT8 in the regions where it pays,
    or the float artifact itself when nothing INT8 is faster (see the module docstring). build: makes an INT8
    artifact with the given regions float (``calibration.quantize`` passes its own). size_hw: OpenVINO's static
    size (required there)."""
    from tqdm import tqdm

    eval_data = list(eval_data)
    check_options(backend=backend, eval_data=eval_data, max_drop=max_drop)
    if not eval_data:
        raise InputError("eval_data: expected labelled (image, label) pairs to hold the mIoU budget, got none")
    if backend == "openvino" and size_hw is None:
        raise InputError("size_hw: OpenVINO's float and INT8 IRs are static; expected (H, W), got None")
    granularity, repeats = options.granularity, options.repeats
    fp32, out = Path(fp32_artifact), Path(output)
    out.mkdir(parents=True, exist_ok=True)
    groups = regions(fp32, backend, granularity)
    probe = eval_data[:: max(1, len(eval_data) // options.probe_images)]
    probe_calib = dataclasses.replace(calib, frames=calib.frames[:: max(1, len(calib) // options.probe_frames)])
    image = eval_data[0][0]
    q_opts = {"onnxruntime": {"runtime": "onnxruntime"}, "openvino": {"runtime": "openvino"}}[backend]

    with tempfile.TemporaryDirectory(prefix="segedge-latency-", dir=out) as tmp:
        work = Path(tmp)
        ref_path, ref_opts = _float_reference(fp32, backend, work, size_hw)
        ref_miou = _miou(ref_path, ref_opts, eval_data)
        trial_arts = {"int8": (build((), work / "all", probe_calib), q_opts)}
        for name, pattern in tqdm(groups.items(), desc="latency-aware", unit="region", disable=not progress):
            trial_arts[name] = (build((pattern,), work / name.replace("/", "_"), probe_calib), q_opts)
        p50 = p50_side_by_side({"float": (ref_path, ref_opts), **trial_arts}, image, repeats)
        base = _miou(trial_arts["int8"][0], q_opts, probe)
        trials = [RegionTrial(region=n, latency_cost_ms=p50[n] - p50["int8"],
                              miou_gain_points=100 * (_miou(trial_arts[n][0], q_opts, probe) - base)) for n in groups]
        # float only where it is clearly faster: a trial within NOISE of the all-INT8 model is timing noise
        margin = NOISE * p50["int8"]
        keep = [t.region for t in trials if t.latency_cost_ms < -margin]
        pending = sorted((t for t in trials if t.region not in keep and t.miou_gain_points > 0),
                         key=lambda t: -t.miou_gain_points / max(t.latency_cost_ms, 0.1))
        candidate, drop = None, 0.0
        while len(keep) < len(groups):
            candidate = build(tuple(groups[r] for r in keep), work / "candidate", calib)
            drop = 100 * (ref_miou - _miou(candidate, q_opts, eval_data))
            if drop <= max_drop or not pending:
                break
            keep.append(pending.pop(0).region)
        int8_p50 = None
        if candidate is not None and drop <= max_drop:
            final = p50_side_by_side({"float": (ref_path, ref_opts), "int8": (candidate, q_opts)}, image,
                                     2 * repeats)
            int8_p50, float_p50 = final["int8"], final["float"]
        else:
            float_p50 = p50["float"]
        name = "FP32" if backend == "onnxruntime" else "float (OpenVINO's default precision)"
        if int8_p50 is not None and int8_p50 < float_p50:
            winner, src = "int8", candidate
            verdict = (f"INT8 in {len(groups) - len(keep)} of {len(groups)} regions: {float_p50 / int8_p50:.2f}x "
                       f"the {name} artifact here (p50 {int8_p50:.1f} vs {float_p50:.1f} ms), drop {drop:.2f} pt")
        else:
            winner, src, drop = "float", ref_path, 0.0
            why = ("no region's INT8 is faster here" if len(keep) == len(groups) else
                   f"the best INT8 within {max_drop} pt runs p50 {int8_p50:.1f} vs {float_p50:.1f} ms"
                   if int8_p50 is not None else f"no INT8 model held the {max_drop} pt budget")
            verdict = f"{'FP32' if backend == 'onnxruntime' else 'FP32/FP16'} wins here: {why}"
        for child in out.iterdir():  # an earlier output's files; the FP32 source may sit inside (quantize's fp32/)
            if child != work and child.resolve() != ref_path.resolve() and child.resolve() != fp32.resolve():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(work.name))
    result = LatencyAwareResult(
        artifact=out, winner=winner, verdict=verdict,
        float_regions=sorted(keep) if winner == "int8" else sorted(groups),
        int8_regions=sorted(set(groups) - set(keep)) if winner == "int8" else [], float_p50_ms=float_p50,
        int8_p50_ms=int8_p50, drop_points=drop, max_drop=max_drop, trials=trials)
    manifest = read_manifest(out)
    record = result.to_dict() | {"granularity": granularity, "float_miou": ref_miou, "eval_images": len(eval_data),
                                 "probe_images": len(probe), "repeats": repeats}
    record.pop("artifact")
    dataclasses.replace(manifest, extra={**manifest.extra, "latency_aware": record}).write(out)
    return result

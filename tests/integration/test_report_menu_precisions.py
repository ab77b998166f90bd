"""The speed menu's precisions (calibration.report.menu): each phase-B menu point runs its OpenVINO float IR at f32 and
at the CPU's default float precision (bf16 with AVX-512 BF16/AMX), with a command that names the precision; where the
CPU has no bf16 the menu cell is "Not in the grid" with the reason. The menu builds only what ``precisions`` asks for
(no INT8 without int8, no OpenVINO f32 without fp32), and a requested cell a menu point does not get (TensorRT, the
latency-aware INT8 without a labelled tuning set) is listed with the reason. The host's ISA is simulated by the
OpenVINO capabilities ``calibration.report.openvino_status`` returns.
Tiny reports: the shared checkpoint at 128x160, 4 calibration frames, 3 unlabelled images (so no latency-aware
search), scale 1.0 with and without token merging 2x2."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from calibration.report.menu import menu_openvino_floats, menu_skipped, phase_b
from calibration.report.plan import PRECISIONS, ov_default_float
from calibration.speed_menu import menu

AMX_CAPS = ["BF16", "WINOGRAD", "FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"]  # Sapphire Rapids (this Xeon)
AVX2_CAPS = ["WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]  # AVX2 without AVX-512 BF16 / AMX
ARM_CAPS = ["FP32", "FP16", "INT8", "EXPORT_IMPORT"]
TM = menu("1.0", "2x2")  # the one menu point the tiny reports give INT8 (and OpenVINO) variants


def test_menu_floats_follow_the_cpu():
    floats, skipped = menu_openvino_floats(TM, PRECISIONS, (None, AMX_CAPS))
    assert floats == ("fp32", "bf16")
    assert [s["name"] for s in skipped] == ["ov-fp16-tm2x2"] and "default point only" in skipped[0]["reason"]
    names = [(v.name, v.runtime_options) for v in phase_b(TM, ["openvino"], openvino_ok=True, ov_floats=floats)]
    assert names == [("ov-fp32-tm2x2", {"precision": "f32"}), ("ov-bf16-tm2x2", {"precision": "bf16"}),
                     ("ov-int8-tm2x2", {"precision": None})]

    floats, skipped = menu_openvino_floats(TM, PRECISIONS, (None, AVX2_CAPS))
    assert floats == ("fp32",)
    assert {s["name"]: s["reason"].split(" (")[0] for s in skipped} == {
        "ov-bf16-tm2x2": "this CPU has no bf16 arithmetic", "ov-fp16-tm2x2": "this CPU has no fp16 arithmetic"}
    # not requested: neither built nor listed; OpenVINO unavailable: the default point's cells say why
    assert menu_openvino_floats(TM, ("fp32", "int8"), (None, AMX_CAPS)) == (("fp32",), [])
    assert menu_openvino_floats(TM, PRECISIONS, ("openvino is not installed", [])) == (("fp32",), [])
    # the default point is never a menu cell
    assert menu_openvino_floats(menu("1.0", "none"), PRECISIONS, (None, AVX2_CAPS)) == (("fp32",), [])
    # f32 only if fp32 is asked for
    assert menu_openvino_floats(TM, ("bf16", "int8"), (None, AMX_CAPS)) == (("bf16",), [])
    assert menu_openvino_floats(TM, ("int8",), ("openvino is not installed", [])) == ((), [])


def test_phase_b_builds_only_the_requested_precisions():
    both = ["onnxruntime", "openvino"]
    assert [v.name for v in phase_b(TM, both, openvino_ok=True, ov_floats=("fp32",), precisions=("fp32",))] == \
        ["ov-fp32-tm2x2"]
    assert [v.name for v in phase_b(TM, both, openvino_ok=True, ov_floats=(), precisions=("int8",))] == \
        ["ort-int8-minmax-tm2x2", "ort-int8-minmax-latency-tm2x2", "ov-int8-tm2x2"]
    # the default point's latency-aware INT8 (the rest of its cells are in the main grid) only with int8
    default = menu("1.0", "none")
    assert [v.name for v in phase_b(default, both, openvino_ok=True, precisions=("fp32", "int8"))] == \
        ["ort-int8-minmax-latency"]
    assert phase_b(default, both, openvino_ok=True, precisions=("fp32", "bf16")) == []


def test_menu_skipped_states_requested_cells_a_point_lacks():
    out = menu_skipped(TM, ["onnxruntime", "tensorrt"], ("fp32", "int8"), tune=False, frame_hw=(128, 160))
    reasons = {s["name"]: s["reason"] for s in out}
    assert sorted(reasons) == ["ort-int8-minmax-latency-tm2x2", "trt-fp32-tm2x2", "trt-int8-tm2x2"]
    assert "labelled" in reasons["ort-int8-minmax-latency-tm2x2"]
    assert "default point only" in reasons["trt-int8-tm2x2"]
    assert "segedge export CHECKPOINT --size 128 160 --token-merge 2x2" in reasons["trt-int8-tm2x2"]
    half = menu_skipped(menu("0.5", "none"), ["tensorrt"], ("fp16",), tune=True, frame_hw=(128, 160))
    assert [s["name"] for s in half] == ["trt-fp16-s0.5"] and "--size 64 80)" in half[0]["reason"]
    # not requested (or a tuning set exists): neither built nor listed
    assert menu_skipped(TM, ["onnxruntime", "openvino"], ("fp32",), tune=False, frame_hw=(128, 160)) == []
    assert menu_skipped(TM, ["onnxruntime"], ("int8",), tune=True, frame_hw=(128, 160)) == []


def test_default_float_is_openvinos():
    import openvino as ov

    assert ov_default_float(AMX_CAPS, "x86_64") == "bf16" and ov_default_float(AVX2_CAPS, "x86_64") == "fp32"
    assert ov_default_float(ARM_CAPS, "aarch64") == "fp16" and ov_default_float(ARM_CAPS, "x86_64") == "fp32"
    core = ov.Core()
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    hint = core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()  # what this host runs unhinted
    assert {"bf16": "bf16", "fp16": "f16", "fp32": "f32"}[ov_default_float(caps)] == hint


def _report(out: Path, hf_model, camvid, labelled_set, backends, caps, precisions=("fp32", "fp16", "bf16")):
    from calibration import report
    from calibration.report import CostOptions, make_report

    with pytest.MonkeyPatch.context() as mp:
        if caps is not None:
            mp.setattr(report, "openvino_status", lambda: (None, caps))
        return make_report(hf_model, out, calib=camvid / "train.txt", eval_set=labelled_set / "images",
                           num_samples=4, size_hw=(128, 160), methods=["minmax"],
                           precisions=list(precisions), backends=backends, max_drop=100.0,
                           scales=(1.0,), token_merges=("none", "2x2"), examples=0, progress=False,
                           cost=CostOptions(repeats=3, warmup=1, batch=2, pause_s=0.0, settle_s=0.0, memory=False))


@pytest.fixture(scope="module")
def bf16_report(tmp_path_factory, hf_model, camvid, labelled_set):
    """This host's own capabilities, where it has bf16. The menu point is built and timed for real, so a host
    without bf16 arithmetic cannot run it (OpenVINO refuses the hint there; simulating AMX's capabilities only
    reached that refusal): skipped with the reason, the no-bf16 menu being covered by ``avx2_report``."""
    import openvino as ov

    real = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if "BF16" not in real:
        pytest.skip(f"needs a CPU with bf16 arithmetic (AVX-512 BF16 or AMX) to build and time the bf16 menu point; "
                    f"OpenVINO's capabilities here: {real}")
    return _report(tmp_path_factory.mktemp("menu-bf16"), hf_model, camvid, labelled_set,
                   ["onnxruntime", "openvino"], None)


@pytest.fixture(scope="module")
def avx2_report(tmp_path_factory, hf_model, camvid, labelled_set):
    return _report(tmp_path_factory.mktemp("menu-avx2"), hf_model, camvid, labelled_set, ["openvino"], AVX2_CAPS,
                   precisions=PRECISIONS)


def test_bf16_menu_point_built_timed_and_recommendable(bf16_report):
    r = bf16_report
    by_name = {v["name"]: v for v in r["variants"]}
    assert r["grid"]["menu_int8_points"] == [{"scale": 1.0, "token_merge": "2x2"}]
    bf16, fp32 = by_name["ov-bf16-tm2x2"], by_name["ov-fp32-tm2x2"]
    assert not [n for n, v in by_name.items() if v["precision"] == "int8"]  # int8 was not asked for
    assert bf16["status"] == "built", bf16.get("error")
    assert (bf16["precision"], bf16["scale"], bf16["token_merge"]) == ("bf16", 1.0, "2x2")
    assert bf16["runtime_options"] == {"precision": "bf16"} and bf16["artifact"] == fp32["artifact"]  # one IR
    assert bf16["cost"]["latency_ms"]["p50_ms"] > 0 and 0 < bf16["accuracy"]["agreement"] <= 1
    # its rebuild command makes the point's IR and says how to run it at bf16; the f32 one says f32
    assert bf16["command"].startswith("segedge export ") and "--token-merge 2x2" in bf16["command"]
    assert "segedge export-openvino" in bf16["command"] and "precision='bf16'" in bf16["command"]
    assert "precision='f32'" in fp32["command"] and "precision='bf16'" in bf16["run_with"]
    assert "precision='bf16'" in by_name["ov-bf16"]["command"]  # the default point's states it too
    # fp16 was requested: where the CPU has it, it is measured at the default point only
    fp16 = {s["name"]: s["reason"] for s in r["skipped"]}["ov-fp16-tm2x2"]
    assert ("default point only" in fp16) == ("ov-fp16" in by_name)
    # the recommendation (everything is within max_drop 100) and the Pareto front consider it
    rec = r["recommendation"]
    assert rec["latency_p50_ms"] <= bf16["cost"]["latency_ms"]["p50_ms"]
    timed = [v for v in r["variants"] if v["cost"].get("latency_ms") and v["accuracy"]]
    dominated = any(v["cost"]["latency_ms"]["p50_ms"] <= bf16["cost"]["latency_ms"]["p50_ms"]
                    and v["accuracy"]["agreement"] >= bf16["accuracy"]["agreement"] and v["name"] != bf16["name"]
                    and (v["cost"]["latency_ms"]["p50_ms"], v["accuracy"]["agreement"]) !=
                    (bf16["cost"]["latency_ms"]["p50_ms"], bf16["accuracy"]["agreement"]) for v in timed)
    assert bf16["pareto"] == (not dominated) == ("ov-bf16-tm2x2" in r["pareto_front"])


def test_bf16_menu_point_in_the_html_and_markdown(bf16_report):
    page = Path(bf16_report["files"]["html"]).read_text()
    # the precision panel plots it in bf16's colour; the scale panel plots it too
    group = re.search(r'<g id="menu-precision-ov-bf16-tm2x2">(.*?)</g>', page, re.S)
    assert group and "#9467bd" in group.group(1)
    assert 'id="menu-scale-ov-bf16-tm2x2"' in page
    md = Path(bf16_report["files"]["md"]).read_text()
    line = next(x for x in md.splitlines() if x.startswith("- ov-bf16-tm2x2: "))
    assert "precision='bf16'" in line


def test_int8_menu_command_quantizes_what_its_export_made(avx2_report):
    """The OpenVINO INT8 of a menu point is built from the point's portable export; its command says so."""
    v = next(v for v in avx2_report["variants"] if v["name"] == "ov-int8-tm2x2")
    export, quantize = v["command"].split(" && ")
    made = export.split(" --output ")[1].split()[0]
    assert quantize.startswith(f"segedge quantize {made} --backend openvino")
    assert Path(made).name == "fp32-portable-tm2x2"


def test_no_bf16_cpu_leaves_the_menu_cell_out_with_the_reason(avx2_report):
    r = avx2_report
    names = {v["name"] for v in r["variants"]}
    assert {"ov-fp32", "ov-fp32-tm2x2", "ov-int8-tm2x2"} <= names
    assert not names & {"ov-bf16", "ov-bf16-tm2x2", "ov-fp16", "ov-fp16-tm2x2"}
    skipped = {s["name"]: s["reason"] for s in r["skipped"]}
    for name in ("ov-bf16", "ov-bf16-tm2x2"):
        assert skipped[name].startswith("this CPU has no bf16 arithmetic (OpenVINO CPU capabilities: WINOGRAD")
    md = Path(r["files"]["md"]).read_text()
    assert "- ov-bf16-tm2x2: this CPU has no bf16 arithmetic" in md.split("## Not in the grid")[1]
    fp32 = next(v for v in r["variants"] if v["name"] == "ov-fp32-tm2x2")
    assert fp32["status"] == "built" and "precision='f32'" in fp32["command"]


@pytest.fixture(scope="module")
def fp32_report(tmp_path_factory, hf_model, camvid, labelled_set):
    """--precisions fp32 with every backend, on this host's own capabilities (no TensorRT GPU here or not)."""
    return _report(tmp_path_factory.mktemp("menu-fp32"), hf_model, camvid, labelled_set,
                   ["onnxruntime", "openvino", "tensorrt"], None, precisions=("fp32",))


def test_fp32_only_menu_builds_no_int8_and_states_what_it_skips(fp32_report):
    r = fp32_report
    by_name = {v["name"]: v for v in r["variants"]}
    assert r["grid"]["menu_int8_points"] == [{"scale": 1.0, "token_merge": "2x2"}]
    assert "where --precisions asks for it" in r["grid"]["menu_prune_rule"]
    # the menu point gets FP32 in ONNX Runtime and OpenVINO's f32, nothing at a precision not asked for
    for name in ("ort-fp32-tm2x2", "ov-fp32-tm2x2"):
        assert by_name[name]["status"] == "built", by_name[name].get("error")
    assert by_name["ov-fp32-tm2x2"]["runtime_options"] == {"precision": "f32"}
    assert {v["precision"] for v in r["variants"]} == {"fp32"}
    assert not [v for v in r["variants"] if v["preset"] == "latency-aware"]
    # the requested TensorRT FP32 at the menu point is not built: Not in the grid says why and how to make it
    skipped = {s["name"]: s["reason"] for s in r["skipped"]}
    assert "default point only" in skipped["trt-fp32-tm2x2"]
    assert "--size 128 160 --token-merge 2x2" in skipped["trt-fp32-tm2x2"]
    assert not [n for n in skipped if "int8" in n or "bf16" in n or "fp16" in n]  # not asked: not listed
    md = Path(r["files"]["md"]).read_text().split("## Not in the grid")[1]
    assert "- trt-fp32-tm2x2: the speed menu builds TensorRT at the default point only" in md
    page = Path(r["files"]["html"]).read_text()
    assert "trt-fp32-tm2x2" in page.split("Not in the grid")[1]

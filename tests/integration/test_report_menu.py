"""The report's speed menu (calibration.report.menu): scale and token-merge axes, the INT8 prune rule, the
latency-aware variant, commands that rebuild each variant, masks at the frame's size, the menu plots in the HTML.
A tiny grid: the shared checkpoint at 128x160, 4 calibration frames, 3 labelled images."""
from __future__ import annotations

import json

import cv2
import pytest

from calibration.report.menu import menu_points_for_int8, phase_a, phase_b
from calibration.report.plan import Accuracy, Variant
from calibration.speed_menu import MenuPoint, menu
from converters.token_merge_spec import TokenMerge


def _fp32(scale, merge, drop):
    v = phase_a([MenuPoint(scale=scale, merge=TokenMerge(mode=merge) if merge != "none" else TokenMerge())])
    v = v[0] if v else Variant(name="ort-fp32", backend="onnxruntime", precision="fp32", method=None,
                               preset="default", runtime="onnxruntime")
    v.status, v.accuracy = "built", Accuracy(images=1, agreement=0.9, miou=0.5, drop_points=drop)
    return v


def test_prune_keeps_only_the_cheapest_within_budget_points():
    rows = [_fp32(1.0, "none", 0.0), _fp32(1.0, "2x2", 0.3), _fp32(0.75, "none", 0.2), _fp32(0.75, "2x2", 0.6),
            _fp32(0.5, "none", 3.7), _fp32(0.5, "2x2", 3.6)]
    kept = menu_points_for_int8(rows, 0.5)
    # within budget: (1, none), (1, 2x2), (0.75, none); (0.75, 2x2) is over; (1, none) is undercut by both others
    assert sorted((p.scale, p.merge.spec) for p in kept) == [(0.75, "none"), (1.0, "2x2")]
    names = [v.name for v in phase_b(kept, ["onnxruntime", "openvino"], openvino_ok=True)]
    assert names == ["ort-int8-minmax-tm2x2", "ort-int8-minmax-latency-tm2x2", "ov-fp32-tm2x2", "ov-int8-tm2x2",
                     "ort-int8-minmax-s0.75", "ort-int8-minmax-latency-s0.75", "ov-fp32-s0.75", "ov-int8-s0.75"]
    assert [v.name for v in phase_b(kept[:1], ["onnxruntime"], openvino_ok=False, tune=False)] == \
        ["ort-int8-minmax-tm2x2"]
    assert [v.name for v in phase_a(menu("1.0,0.5", "none,2x2"))] == ["ort-fp32-tm2x2", "ort-fp32-s0.5",
                                                                       "ort-fp32-s0.5-tm2x2"]


@pytest.fixture(scope="module")
def menu_report(tmp_path_factory, hf_model, camvid, labelled_set):
    from calibration.report import CostOptions, make_report

    out = tmp_path_factory.mktemp("menu-report")
    return make_report(hf_model, out, calib=camvid / "train.txt", eval_set=labelled_set, num_samples=4,
                       size_hw=(128, 160), methods=["minmax"], precisions=["fp32", "int8"],
                       backends=["onnxruntime", "openvino"], max_drop=100.0, scales=(1.0, 0.5),
                       token_merges=("none", "2x2"), examples=0, progress=False,
                       cost=CostOptions(repeats=3, warmup=1, batch=2, pause_s=0.0, settle_s=0.0, memory=False))


def test_menu_variants_commands_and_masks(menu_report, labelled_set):
    from sdk.segmenter import Segmenter

    by_name = {v["name"]: v for v in menu_report["variants"]}
    for name in ("ort-fp32-tm2x2", "ort-fp32-s0.5", "ort-fp32-s0.5-tm2x2"):
        assert by_name[name]["status"] == "built", by_name[name].get("error")
    # max_drop 100: every point is within budget, so only the cheapest by construction gets INT8
    assert menu_report["grid"]["menu_int8_points"] == [{"scale": 0.5, "token_merge": "2x2"}]
    for name in ("ort-int8-minmax-s0.5-tm2x2", "ov-fp32-s0.5-tm2x2", "ov-int8-s0.5-tm2x2"):
        assert by_name[name]["status"] == "built", by_name[name].get("error")
    la = [v for v in menu_report["variants"] if v["preset"] == "latency-aware"]
    assert len(la) == 1 and la[0]["status"] == "built" and la[0]["scale"] == 0.5
    record = json.loads((__import__("pathlib").Path(la[0]["artifact"]) / "model.json").read_text())["extra"]
    lat = record["latency_aware"]
    assert lat["verdict"] in la[0]["notes"]
    assert (lat["winner"] == "int8") == (la[0]["precision"] == "int8")
    if lat["winner"] == "int8":
        assert lat["int8_p50_ms"] < lat["float_p50_ms"]
    image = cv2.imread(str(sorted((labelled_set / "images").iterdir())[0]))[..., ::-1].copy()
    for name in ("ort-fp32-s0.5-tm2x2", "ort-int8-minmax-s0.5-tm2x2"):
        v = by_name[name]
        assert v["command"].startswith("segedge export ") and "--size 64 80 --token-merge 2x2" in v["command"]
        assert v["scale"] == 0.5 and v["token_merge"] == "2x2"
        with Segmenter.from_artifact(v["artifact"], runtime="onnxruntime") as seg:
            assert tuple(seg.manifest.preprocess.size_hw) == (64, 80)
            assert seg(image).mask.shape == image.shape[:2]  # the network at half size, the mask at the frame's
    assert "--size 64 80" in by_name["ov-int8-s0.5-tm2x2"]["command"]
    # each point's float IR is its own (the default point's ov-ir is not overwritten by a menu point's)
    ov_float = [v for v in menu_report["variants"] if v["backend"] == "openvino" and v["precision"] != "int8"
                and v["status"] == "built"]
    irs = {(v["scale"], v["token_merge"]): v["artifact"] for v in ov_float}
    assert len(set(irs.values())) == len(irs) >= 2, irs
    for (scale, merge), ir in irs.items():
        from sdk.core.manifest import read_manifest

        m = read_manifest(ir)
        assert (m.extra.get("token_merge") or {}).get("spec", "none") == merge
        assert tuple(m.preprocess.size_hw) == ((64, 80) if scale == 0.5 else (128, 160))


def test_menu_plots_in_the_html(menu_report):
    from pathlib import Path

    page = Path(menu_report["files"]["html"]).read_text()
    assert "coloured by input scale" in page and "coloured by precision" in page
    assert menu_report["grid"]["scales"] == [1.0, 0.5] and menu_report["grid"]["token_merges"] == ["2x2", "none"]

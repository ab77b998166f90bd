"""Issue 13, a newcomer's first hour: the demo without ../shared, --version, doctor, --device, report dependencies
checked before any work, inspect/eval output, stream rendering sized for the frame, quiet quantization, examples
without tracebacks."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdk.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_artifact(tmp_path_factory):
    """The bundled checkpoint exported to ONNX once for this module."""
    from converters.onnx_export import export_onnx
    from sdk.cli.demo import DEMO_CHECKPOINT

    return export_onnx(DEMO_CHECKPOINT, tmp_path_factory.mktemp("art") / "b0", progress=False)


# ------------------------------------------------------------------------------------------------------------ demo
def test_demo_without_camvid_runs_on_drawn_scenes(tmp_path, monkeypatch, capsys):
    """A clone with nothing beside it: the default CamVid location is missing, the demo still segments and times."""
    from sdk.cli import demo

    monkeypatch.setattr(demo, "DEFAULT_CAMVID", tmp_path / "nothing-here")
    monkeypatch.setattr(demo.find_camvid, "__kwdefaults__", {"default": tmp_path / "nothing-here"})
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--frames", "3", "--save", "2", "--output", "out/demo", "-q"]) == 0
    out = capsys.readouterr().out
    assert "no CamVid at" in out and "drawn street scenes" in out and "--camvid DIR" in out
    assert "p50" in out and out.strip().splitlines()[-1].startswith("next: segedge predict")
    summary = json.loads((tmp_path / "out/demo/demo.json").read_text())
    assert summary["latency_ms"]["frames"] == 3 and summary["latency_ms"]["p50_ms"] > 0
    assert 0.0 <= summary["drawn_layout_pixel_agreement"] <= 1.0
    masks = sorted(p.name for p in (tmp_path / "out/demo/masks").iterdir())
    assert masks == ["street_00.png", "street_00_color.png", "street_00_overlay.png", "street_01.png",
                     "street_01_color.png", "street_01_overlay.png"]


def test_demo_checks_camvid_before_the_export(tmp_path, capsys):
    missing = tmp_path / "no-camvid"
    assert main(["demo", "--camvid", str(missing), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "--camvid" in err and "does not exist" in err and "--camvid none" in err and "\n" not in err.strip()
    assert not (tmp_path / "out" / "artifact").exists()  # failed before exporting anything


def test_demo_finds_camvid_against_the_project_not_the_cwd(tmp_path, monkeypatch):
    from sdk.cli.demo import DEFAULT_CAMVID, PROJECT, find_camvid

    assert DEFAULT_CAMVID == PROJECT.parent / "shared" / "data" / "camvid" and DEFAULT_CAMVID.is_absolute()
    root = tmp_path / "camvid"
    root.mkdir()
    (root / "val.txt").write_text("val/a.png valannot/a.png\n")
    monkeypatch.chdir(tmp_path / "camvid")
    assert find_camvid(None, "val", default=root) == root
    assert find_camvid(None, "test", default=root) is None  # no test.txt: drawn scenes
    assert find_camvid("none", "val", default=root) is None
    assert find_camvid(str(root), "val") == root


def test_drawn_scenes_are_deterministic_and_labelled():
    from sdk.cli.demo_scenes import street_scene

    a, la = street_scene((360, 480), 1)
    b, lb = street_scene((360, 480), 1)
    assert a.shape == (360, 480, 3) and a.dtype == np.uint8 and la.shape == (360, 480) and la.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, street_scene((360, 480), 2)[0])
    assert {0, 1, 3, 4, 8, 9} <= set(np.unique(la).tolist())  # sky, building, road, pavement, car, pedestrian


# ------------------------------------------------------------------------------------------- version and doctor
def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from importlib.metadata import version

    assert capsys.readouterr().out.strip() == f"segedge {version('segedge')}"


def test_doctor_reports_cpu_runtimes_and_missing(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for needle in ("CPU:", "AVX2", "AVX-512", "VNNI", "BF16", "AMX", "ONNX Runtime:", "CPUExecutionProvider",
                   "OpenVINO:", "CPU (", "TensorRT:", "pycuda:", "CUDA GPUs:", "GStreamer", "Jobs:"):
        assert needle in out, needle
    assert main(["doctor", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["cpu"]["features"]) >= {"AVX2", "AVX-512", "VNNI", "BF16", "AMX"}
    assert "CPU" in d["details"]["openvino"]["devices"]
    jobs = {j["job"]: j for j in d["jobs"]}
    assert jobs["run ONNX artifacts"]["ready"]
    for job in jobs.values():  # every job not ready names what is missing and the command that installs it
        assert job["ready"] or (job["missing"] and job["install"].startswith(
            ("pip install 'segedge[", "TensorRT comes with JetPack")))  # TensorRT: JetPack's route, not pip


# ------------------------------------------------------------------------------------------------------- --device
def test_device_maps_to_each_runtime(demo_artifact, tmp_path):
    from runtimes.devices import runtime_for_device
    from sdk.core.errors import InputError

    assert runtime_for_device(demo_artifact, "auto", None) == ("auto", {})
    assert runtime_for_device(demo_artifact, "auto", "cpu") == ("onnxruntime", {"providers": ["cpu"]})
    assert runtime_for_device(demo_artifact, "auto", "cuda") == ("onnxruntime", {"providers": ["cuda", "cpu"]})
    assert runtime_for_device(demo_artifact, "auto", "gpu.1") == ("openvino", {"device": "GPU.1"})
    assert runtime_for_device(demo_artifact, "openvino", "NPU") == ("openvino", {"device": "NPU"})
    with pytest.raises(InputError, match="--device NPU: ONNX Runtime"):
        runtime_for_device(demo_artifact, "onnxruntime", "NPU")
    with pytest.raises(InputError, match="--device cuda: OpenVINO devices"):
        runtime_for_device(demo_artifact, "openvino", "cuda")


def test_device_in_the_library(demo_artifact):  # issue 26 item 3: from_artifact/open_runtime(device=) map it
    from runtimes import open_runtime
    from sdk import Segmenter
    from sdk.core.errors import InputError

    with Segmenter.from_artifact(demo_artifact, device="cpu") as seg:  # auto + cpu: ONNX Runtime, CPU provider
        assert seg.runtime.name == "onnxruntime" and seg.runtime.auto_choice is None
    with open_runtime(demo_artifact, "openvino", device="cpu") as rt:
        assert rt.name == "openvino" and rt.device == "CPU"
    with pytest.raises(InputError, match="--device NPU: ONNX Runtime"):
        Segmenter.from_artifact(demo_artifact, runtime="onnxruntime", device="NPU")
    with pytest.raises(InputError, match="means providers=\\['cpu'\\], but providers="):
        open_runtime(demo_artifact, device="cpu", providers=["cuda"])
    for bad in ("", True, -1, 1.5):
        with pytest.raises(InputError, match="device: expected a name"):
            open_runtime(demo_artifact, device=bad)
    from runtimes.devices import device_options  # the table alone: a GPU index (Triton's), OpenVINO's names

    assert device_options("engine", "auto", 1) == ("tensorrt", {"device": 1})
    assert device_options("engine", "tensorrt", "cuda:2") == ("tensorrt", {"device": 2})
    assert device_options("openvino", "auto", "batch:gpu") == ("openvino", {"device": "BATCH:GPU"})
    with pytest.raises(InputError, match="a TensorRT engine runs on an NVIDIA GPU"):
        device_options("engine", "auto", "cpu")


def test_device_flag_on_eval_predict_bench_stream(demo_artifact, tmp_path, capsys):
    from sdk.cli import build_parser

    for argv in (["predict", str(demo_artifact), "x.png", "--output", "m"], ["eval", str(demo_artifact), "--data", "d"],
                 ["bench", str(demo_artifact), "--size", "64", "64"], ["stream", str(demo_artifact), "--source", "0"]):
        assert build_parser().parse_args([*argv, "--device", "GPU"]).device == "GPU"
    # an OpenVINO device this machine lacks: one line naming what it has, no traceback
    import cv2

    from sdk.cli.demo_scenes import street_scene

    cv2.imwrite(str(tmp_path / "s.png"), street_scene((96, 128), 0)[0])
    assert main(["predict", str(demo_artifact), str(tmp_path / "s.png"), "--output", str(tmp_path / "m"),
                 "--device", "NPU.7"]) == 1
    err = capsys.readouterr().err
    assert "NPU.7" in err and "available" in err and "Traceback" not in err
    assert main(["predict", str(demo_artifact), str(tmp_path / "s.png"), "--output", str(tmp_path / "m"),
                 "--device", "cpu"]) == 0


# ------------------------------------------------------------------------------------ report dependencies up front
def test_report_dependencies_per_backend():
    from calibration.report.deps import report_dependencies

    ov_fp32 = report_dependencies(["openvino"], precisions=["fp32"], from_checkpoint=False)
    assert "nncf" not in ov_fp32 and "onnx" not in ov_fp32 and {"openvino", "matplotlib"} <= set(ov_fp32)
    assert "nncf" in report_dependencies(["openvino"])
    ort = report_dependencies(["onnxruntime"], from_checkpoint=False)
    assert "onnx" in ort and "openvino" not in ort and "nncf" not in ort
    assert {"torch", "onnx", "safetensors"} <= set(report_dependencies(["openvino"], precisions=["fp32"]))


def test_report_stops_before_any_work_on_a_missing_module(tmp_path, monkeypatch, capsys):
    import calibration.report.deps as deps

    monkeypatch.setattr(deps, "_installed", lambda m: m not in ("matplotlib", "nncf"))
    out = tmp_path / "report"
    assert main(["report", "path/that/is/never/read", "--calib", "frames/", "--eval", "labelled/", "--backends",
                 "openvino", "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "matplotlib" in err and "nncf" in err and "pip install 'segedge[quantize,report]'" in err
    assert "\n" not in err and not out.exists()


def test_report_does_not_import_sensitivity_without_onnx():
    """Without onnx, the report's modules and the quantization entry import; calibration.sensitivity (which needs
    onnx) loads only for an ONNX Runtime/TensorRT max-drop variant."""
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import calibration.report, calibration.int8, sdk.cli.report\n"
            "assert 'calibration.sensitivity' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------------ inspect and eval
def test_inspect_for_people(demo_artifact, capsys):
    assert main(["inspect", str(demo_artifact)]) == 0
    out = capsys.readouterr().out
    assert "graph      portable" in out and "precision  fp32" in out and "SegFormer-B0, 11 classes" in out
    assert "input      any size" in out and "parity" in out
    assert main(["inspect", str(demo_artifact), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["graph"] == "portable"


def test_eval_prints_percent_and_per_class(demo_artifact, tmp_path, capsys):
    import cv2

    from sdk.cli.demo_scenes import street_scene

    for split in ("images", "labels"):
        (tmp_path / split).mkdir()
    for i in range(2):
        img, lab = street_scene((96, 128), i)
        cv2.imwrite(str(tmp_path / "images" / f"f{i}.png"), img[..., ::-1])
        cv2.imwrite(str(tmp_path / "labels" / f"f{i}.png"), lab)
    assert main(["eval", str(demo_artifact), "--data", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "mIoU" in out[0] and "%" in out[0] and "over 2 images" in out[0]
    assert out[1].split()[0] == "sky" and out[1].endswith("%") and len(out) == 12


# ------------------------------------------------------------------------------------------------------ rendering
def _result(mask):
    from sdk.core.result import SegmentationResult, default_palette

    names = [f"class{i}" for i in range(11)]
    return SegmentationResult(mask=mask, class_names=names, palette=default_palette(11)), names


def test_legend_fits_a_quarter_of_a_small_frame():
    from sdk.stream.render import LEGEND_MAX_HEIGHT, Renderer, RenderOptions

    mask = np.repeat(np.arange(11, dtype=np.uint8), 44)[None, :480].repeat(360, 0)
    mask = np.pad(mask, ((0, 0), (0, 480 - mask.shape[1])), mode="edge")
    res, names = _result(mask)
    frame = np.full((360, 480, 3), 200, np.uint8)
    r = Renderer(names, res.palette, RenderOptions(alpha=0.0, hud=False))
    picture = r.annotate(frame, res)
    boxed = np.all(picture == 32, axis=2)  # the legend's dark box
    rows = np.where(boxed.any(axis=1))[0]
    assert rows.size and rows.min() >= 360 * (1 - LEGEND_MAX_HEIGHT) - 2  # within the bottom quarter


def test_hud_stays_in_its_pane_side_by_side():
    from sdk.stream.render import Renderer, RenderOptions

    res, names = _result(np.zeros((240, 320), np.uint8))
    frame = np.full((240, 320, 3), 200, np.uint8)
    r = Renderer(names, res.palette, RenderOptions(alpha=0.0, legend=False, side_by_side=True))
    hud = ["FPS 12.3  infer 52.1 ms  pre 3.2 ms  post 1.0 ms  render 4.1 ms  queue 0/2", "drops 0  frames 1234"]
    picture = r.annotate(frame, res, hud)
    assert picture.shape == (240, 640, 3)
    assert np.array_equal(picture[:, :320], frame)  # the original pane is untouched
    assert np.all(picture == 32, axis=2)[:, 320:].any()  # the HUD is drawn on the overlay pane


def test_video_sink_writes_a_playable_file(tmp_path):
    import cv2

    from sdk.stream.render import VideoSink, video_codec

    assert video_codec() in ("avc1", "mp4v")
    sink = VideoSink(tmp_path / "v.mp4", 10)
    for i in range(5):
        sink.write(np.full((64, 96, 3), 40 * i, np.uint8))
    sink.close()
    assert sink.codec == video_codec()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


# ------------------------------------------------------------------------------------------------ quiet toolkits
def test_quiet_toolkits_drops_calibrator_prints_and_nncf_info(capsys):
    from calibration.quiet import quiet_toolkits

    nncf_log = logging.getLogger("nncf")
    handler = logging.StreamHandler(io.StringIO())
    nncf_log.addHandler(handler)
    try:
        with quiet_toolkits(verbose=False):
            print("Collecting tensor data and making histogram ...")
            print("Number of tensors : 42")
            print("our own line")
            nncf_log.info("INFO:nncf: Statistics collection")
            nncf_log.warning("a real warning")
    finally:
        nncf_log.removeHandler(handler)
    assert capsys.readouterr().out == "our own line\n"
    logged = handler.stream.getvalue()
    assert "a real warning" in logged and "Statistics collection" not in logged
    with quiet_toolkits(verbose=True):
        print("Collecting tensor data and making histogram ...")
    assert "Collecting" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------- examples
@pytest.mark.parametrize("script,args,needle", [
    ("camera_to_screen.py", ["--source", "7", "--output", "x.mp4"], "source 7"),
    ("rtsp_to_file.py", ["rtsp://127.0.0.1:9/none", "x.mp4"], "rtsp://127.0.0.1:9/none"),
])
def test_examples_fail_in_one_line(demo_artifact, tmp_path, script, args, needle):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), str(demo_artifact), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script[:-3]}: error: ") and needle in last


# ------------------------------------------------------------------------------------------ messages in CLI terms
def test_cli_messages_point_at_the_right_command(demo_artifact, tmp_path, capsys):
    from sdk.cli.demo import DEMO_CHECKPOINT

    image = tmp_path / "s.png"
    import cv2

    from sdk.cli.demo_scenes import street_scene

    cv2.imwrite(str(image), street_scene((96, 128), 0)[0])
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 16)
    cases = [(["predict", str(DEMO_CHECKPOINT), str(image)], "segedge export"),
             (["predict", str(demo_artifact), str(video)], "segedge stream"),
             (["predict", str(demo_artifact), str(image), "--runtime", "tensorrt"], "segedge build"),
             (["predict", str(demo_artifact), str(image), "--device", "GPU", "--runtime", "openvino"], "--device CPU")]
    for argv, needle in cases:
        assert main([*argv, "--output", str(tmp_path / "m")]) == 1
        err = capsys.readouterr().err.strip()
        assert needle in err and "runtime='" not in err and "providers=['" not in err and "\n" not in err, err
    assert f"--output {DEMO_CHECKPOINT}" not in err  # never advises exporting into the checkpoint's own folder

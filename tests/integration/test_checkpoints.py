"""Checkpoint reading: config inference, labels, unused keys, and refusal of bad input (fast CPU tier).

Every bad input must raise the SDK's own error class with a message that says what was expected.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.checkpoints import load_checkpoint, read_checkpoint, to_huggingface
from sdk.core.errors import CheckpointError, LabelsError

from conftest import HF_MODEL, NVLABS_MODEL

try:  # tests/ may or may not become a package; a `tests` package in site-packages shadows a namespace one
    from tests.helpers import random_hf_model, save_hf_folder
except ImportError:
    from helpers import random_hf_model, save_hf_folder

CAMVID = ["sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car", "pedestrian",
          "bicyclist"]

needs_shared = pytest.mark.skipif(
    not (HF_MODEL / "config.json").is_file() or not NVLABS_MODEL.is_file(),
    reason=f"the reference models are not in {HF_MODEL.parent} (../shared/models seen from the repository root)",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nvlabs_obj() -> dict:
    """The shared NVlabs checkpoint as a dict {'meta', 'state_dict'} (read-only: tests copy before editing)."""
    if not NVLABS_MODEL.is_file():
        pytest.skip(f"{NVLABS_MODEL} is absent")
    return torch.load(NVLABS_MODEL, map_location="cpu", weights_only=True)


def _nvlabs_variant(obj: dict, tmp_path: Path, *, drop=(), add=None, meta=None, name="edited.pth") -> Path:
    sd = {k: v for k, v in obj["state_dict"].items() if k not in drop}
    sd.update(add or {})
    path = tmp_path / name
    torch.save({"meta": obj["meta"] if meta is None else meta, "state_dict": sd}, path)
    return path


def _hf_variant(tmp_path: Path, *, drop=(), add=None, config=None) -> Path:
    """A copy of the shared HF folder with tensors dropped/added or config.json edited."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "hf"
    folder.mkdir()
    sd = load_file(str(HF_MODEL / "model.safetensors"))
    sd = {k: v for k, v in sd.items() if k not in drop}
    sd.update(add or {})
    save_file(sd, str(folder / "model.safetensors"))
    cfg = json.loads((HF_MODEL / "config.json").read_text())
    cfg.update(config or {})
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


# ------------------------------------------------------------------------------------------ config inference
@needs_shared
def test_hf_folder_config_and_labels():
    ck = load_checkpoint(HF_MODEL)
    cfg = json.loads((HF_MODEL / "config.json").read_text())
    assert ck.layout == "huggingface"
    assert ck.config.variant == "b0"
    assert ck.config.num_classes == 11
    assert ck.config.hidden_sizes == tuple(cfg["hidden_sizes"]) and ck.config.depths == tuple(cfg["depths"])
    assert ck.config.num_heads == tuple(cfg["num_attention_heads"]) and ck.config.decoder_width == 256
    assert ck.class_names == [cfg["id2label"][str(i)] for i in range(11)] == CAMVID
    assert ck.palette is None  # the HF layout carries no palette
    assert (ck.config.layer_norm_eps, ck.config.patch_norm_eps, ck.config.sr_norm_eps) == (1e-5, 1e-5, 1e-5)
    # preprocessor_config.json: no resize, ImageNet mean/std on the 0..255 scale
    assert ck.preprocess.size_hw is None
    assert ck.preprocess.mean == pytest.approx((123.675, 116.28, 103.53), abs=1e-3)
    assert ck.preprocess.std == pytest.approx((58.395, 57.12, 57.375), abs=1e-3)
    assert len(ck.sha256) == 64


@needs_shared
def test_nvlabs_config_labels_and_palette(nvlabs_obj):
    ck = load_checkpoint(NVLABS_MODEL)
    assert ck.layout == "nvlabs"
    assert ck.config.variant == "b0" and ck.config.num_classes == 11
    assert ck.class_names == list(nvlabs_obj["meta"]["CLASSES"]) == CAMVID
    assert ck.palette == [list(c) for c in nvlabs_obj["meta"]["PALETTE"]]
    assert len(ck.palette) == 11 and all(len(c) == 3 for c in ck.palette)
    # transformers' eps, as its port of the NVlabs weights uses (the NVlabs code's 1e-6 is an explicit option)
    assert (ck.config.layer_norm_eps, ck.config.patch_norm_eps, ck.config.sr_norm_eps) == (1e-5, 1e-5, 1e-5)


@pytest.mark.parametrize("variant, expect", [
    ("b2", dict(variant="b2", hidden_sizes=(64, 128, 320, 512), depths=(3, 4, 6, 3), decoder_width=768,
                num_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1), strides=(4, 2, 2, 2))),
    ("custom", dict(variant="custom", hidden_sizes=(16, 32, 48, 64), depths=(1, 1, 2, 1), decoder_width=64,
                    num_heads=(2, 2, 4, 4), sr_ratios=(4, 2, 2, 1), mlp_ratios=(2, 2, 4, 4), strides=(4, 2, 2, 1))),
])
def test_config_inferred_from_hf_folder(variant, expect, tmp_path):
    pytest.importorskip("transformers", reason="transformers builds the reference checkpoint")
    names = [f"label {i}" for i in range(6)]
    folder = save_hf_folder(random_hf_model(variant, 6, class_names=names), tmp_path / variant)
    ck = load_checkpoint(folder)
    for field, value in expect.items():
        assert getattr(ck.config, field) == value, field
    assert ck.config.num_classes == 6
    assert ck.class_names == names


def test_class_names_override(tmp_path):
    pytest.importorskip("transformers", reason="transformers builds the reference checkpoint")
    folder = save_hf_folder(random_hf_model("b0", 3), tmp_path / "b0")
    assert load_checkpoint(folder, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


@needs_shared
def test_mmseg_style_dataset_meta(nvlabs_obj, tmp_path):
    """Labels may also sit in meta['dataset_meta'] with lower-case keys (mmseg 1.x)."""
    meta = {"dataset_meta": {"classes": tuple(CAMVID), "palette": [[i, i, i] for i in range(11)]}}
    ck = load_checkpoint(_nvlabs_variant(nvlabs_obj, tmp_path, meta=meta))
    assert ck.class_names == CAMVID and ck.palette[3] == [3, 3, 3]


@needs_shared
def test_to_huggingface_round_trip():
    """Ours -> hub names gives back exactly the tensors of the HF file."""
    from safetensors.torch import load_file

    ck = load_checkpoint(HF_MODEL)
    back = to_huggingface(ck.model.state_dict())
    orig = load_file(str(HF_MODEL / "model.safetensors"))
    assert back.keys() == orig.keys()
    assert all(torch.equal(back[k], orig[k]) for k in orig)


# ----------------------------------------------------------------------------------------------- bad input
@needs_shared
@pytest.mark.parametrize("as_file", [False, True], ids=["folder", "file"])
def test_truncated_safetensors(tmp_path, as_file):
    folder = tmp_path / "hf"
    folder.mkdir()
    shutil.copy(HF_MODEL / "config.json", folder)
    data = (HF_MODEL / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a readable safetensors file.*truncated") as err:
        load_checkpoint(folder / "model.safetensors" if as_file else folder)
    print(f"\n[error] {err.value}")


@needs_shared
@pytest.mark.parametrize("cut", [0.5, 0.001, 0.0], ids=["half", "head", "empty"])
def test_truncated_pth(tmp_path, cut):
    data = NVLABS_MODEL.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match=r"cannot be read.*expected a PyTorch checkpoint.*truncated") as err:
        load_checkpoint(path)
    print(f"\n[error] {err.value}")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_corrupt_pth(tmp_path, legacy):
    """Not-a-checkpoint bytes and a truncated legacy (non-zip) file: CheckpointError, never a raw torch error."""
    path = tmp_path / "bad.pth"
    if legacy:
        torch.save({"state_dict": {"w": torch.zeros(64)}}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"hello, this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"cannot be read.*expected a PyTorch checkpoint") as err:
        load_checkpoint(path)
    print(f"\n[error] {err.value}")


def _write_marker(path: str) -> None:
    Path(path).write_text("arbitrary code ran")


class _Payload:
    """Unpickling this calls _write_marker(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_write_marker, (self.marker,))


def test_pickle_needing_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"x": _Payload(marker)}}, path)
    assert not marker.exists()  # saving does not run the payload

    with pytest.raises(CheckpointError, match=r"refusing to load.*arbitrary code.*_write_marker") as err:
        load_checkpoint(path)
    print(f"\n[error] {err.value}")
    assert not marker.exists(), "the checkpoint's pickle payload was executed"
    with pytest.raises(CheckpointError, match="refusing"):
        read_checkpoint(path)
    assert not marker.exists()

    # Control: the payload is live, so the refusal above is what kept it from running.
    control = tmp_path / "CONTROL"
    torch.save(_Payload(control), tmp_path / "control.pth")
    torch.load(tmp_path / "control.pth", weights_only=False)
    assert control.read_text() == "arbitrary code ran"


def test_pth_that_is_not_a_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r"expected a dict of tensors, got Tensor"):
        load_checkpoint(path)


@needs_shared
def test_class_names_of_wrong_length():
    with pytest.raises(LabelsError) as err:
        load_checkpoint(HF_MODEL, class_names=["road", "car", "sky"])
    msg = str(err.value)
    print(f"\n[error] {msg}")
    assert "11 classes" in msg and "3 class names" in msg and "exactly 11" in msg


@needs_shared
def test_metadata_labels_of_wrong_length(tmp_path, nvlabs_obj):
    id2label = {str(i): n for i, n in enumerate(CAMVID[:10])}
    with pytest.raises(LabelsError, match=r"11 classes.*lists 10 class names.*class_names="):
        load_checkpoint(_hf_variant(tmp_path, config={"id2label": id2label}))
    meta = {"CLASSES": CAMVID + ["extra"], "PALETTE": nvlabs_obj["meta"]["PALETTE"]}
    with pytest.raises(LabelsError, match=r"11 classes.*lists 12 class names"):
        load_checkpoint(_nvlabs_variant(nvlabs_obj, tmp_path, meta=meta))


@needs_shared
def test_folder_without_config_json(tmp_path):
    folder = tmp_path / "no-config"
    folder.mkdir()
    shutil.copy(HF_MODEL / "model.safetensors", folder)
    with pytest.raises(CheckpointError, match=r"must be a Hugging Face model folder with config\.json") as err:
        load_checkpoint(folder)
    print(f"\n[error] {err.value}")


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"expected model\.safetensors or pytorch_model\.bin"):
        load_checkpoint(tmp_path)


@needs_shared
@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json"])
def test_unreadable_json(tmp_path, name):
    folder = tmp_path / "hf"
    shutil.copytree(HF_MODEL, folder)
    (folder / name).write_text("{not json")
    with pytest.raises(CheckpointError, match=rf"{name} is unreadable.*expected a JSON file"):
        load_checkpoint(folder)


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_not_a_segformer_state_dict(tmp_path, suffix):
    path = tmp_path / f"other{suffix}"
    sd = {"foo.weight": torch.zeros(4, 4), "foo.bias": torch.zeros(4)}
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file
        save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=r"none of the SegFormer layouts.*segformer\.encoder.*foo\.") as err:
        load_checkpoint(path)
    print(f"\n[error] {err.value}")


def test_state_dict_without_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"state_dict": {}, "meta": {}}, path)
    with pytest.raises(CheckpointError, match="contains no tensors"):
        load_checkpoint(path)


@needs_shared
@pytest.mark.parametrize("key, expect", [
    ("backbone.block2.1.mlp.fc1.weight", r"missing \['encoder\.stages\.1\.blocks\.1\.ffn\.fc1\.weight'\]"),
    ("backbone.block4.0.attn.kv.bias", r"missing \['encoder\.stages\.3\.blocks\.0\.attn\.kv\.bias'\]"),
    ("decode_head.linear_fuse.bn.running_var", r"missing \['decoder\.fuse\.bn\.running_var'\]"),
    ("decode_head.linear_pred.weight", r"tensor 'decoder\.classifier\.weight' is missing"),
    ("backbone.patch_embed3.proj.weight", r"tensor 'encoder\.stages\.2\.patch_embed\.proj\.weight' is missing"),
])
def test_nvlabs_missing_one_tensor(nvlabs_obj, tmp_path, key, expect):
    assert key in nvlabs_obj["state_dict"]
    with pytest.raises(CheckpointError, match=expect) as err:
        load_checkpoint(_nvlabs_variant(nvlabs_obj, tmp_path, drop=[key]))
    print(f"\n[error] {err.value}")


@needs_shared
@pytest.mark.parametrize("key, expect", [
    ("segformer.encoder.block.2.1.mlp.dense2.bias", r"missing \['encoder\.stages\.2\.blocks\.1\.ffn\.fc2\.bias'\]"),
    ("segformer.encoder.block.0.0.attention.self.key.weight", r"needs both key and value weights.*\['value'\]"),
    ("segformer.encoder.layer_norm.3.weight", r"missing \['encoder\.stages\.3\.norm\.weight'\]"),
    ("decode_head.classifier.weight", r"tensor 'decoder\.classifier\.weight' is missing"),
])
def test_hf_missing_one_tensor(tmp_path, key, expect):
    with pytest.raises(CheckpointError, match=expect) as err:
        load_checkpoint(_hf_variant(tmp_path, drop=[key]))
    print(f"\n[error] {err.value}")


@needs_shared
def test_tensor_of_wrong_shape(nvlabs_obj, tmp_path):
    bad = {"backbone.block1.0.mlp.fc2.bias": torch.zeros(33)}
    with pytest.raises(CheckpointError, match=r"ffn\.fc2\.bias has shape \(33,\), expected \(32,\)"):
        load_checkpoint(_nvlabs_variant(nvlabs_obj, tmp_path, add=bad))


# ---------------------------------------------------------------------------------------------- unused keys
@needs_shared
def test_nvlabs_unused_conv_seg_is_tolerated(nvlabs_obj, tmp_path):
    """mmseg's BaseDecodeHead always builds conv_seg, which the NVlabs SegFormer head never uses."""
    assert {"decode_head.conv_seg.weight", "decode_head.conv_seg.bias"} <= set(nvlabs_obj["state_dict"])
    with_seg = load_checkpoint(NVLABS_MODEL)
    without = load_checkpoint(_nvlabs_variant(
        nvlabs_obj, tmp_path, drop=["decode_head.conv_seg.weight", "decode_head.conv_seg.bias"]))
    a, b = with_seg.model.state_dict(), without.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@needs_shared
@pytest.mark.parametrize("key", [
    "decode_head.foo.weight",
    "decode_head.conv_seg.extra",
    "auxiliary_head.conv_seg.weight",
    "backbone.block1.0.attn.extra.weight",
    "backbone.pos_embed",
])
def test_nvlabs_other_unknown_key_is_an_error(nvlabs_obj, tmp_path, key):
    with pytest.raises(CheckpointError, match=r"not part of a SegFormer|unexpected") as err:
        load_checkpoint(_nvlabs_variant(nvlabs_obj, tmp_path, add={key: torch.zeros(2)}))
    msg = str(err.value)
    print(f"\n[error] {msg}")
    assert key in msg or "encoder.stages.0.blocks.0.attn.extra.weight" in msg


@needs_shared
@pytest.mark.parametrize("key", ["segformer.pooler.weight", "segformer.encoder.block.0.0.extra.weight"])
def test_hf_unknown_key_is_an_error(tmp_path, key):
    with pytest.raises(CheckpointError, match=re.escape(key)) as err:
        load_checkpoint(_hf_variant(tmp_path, add={key: torch.zeros(2)}))
    print(f"\n[error] {err.value}")


def test_training_checkpoint_with_numpy_bookkeeping_loads(nvlabs_obj, tmp_path):
    """mmengine's CheckpointHook saves numpy scalars/arrays and history buffers beside the weights: those globals
    become inert placeholders (never imported or run) and only the weights and plain metadata are kept."""
    path = tmp_path / "iter_100.pth"
    meta = {"dataset_meta": {"classes": CAMVID, "palette": nvlabs_obj["meta"]["PALETTE"]}, "seed": np.int64(3)}
    torch.save({"meta": meta, "state_dict": nvlabs_obj["state_dict"],
                "message_hub": {"log_scalars": {"loss": np.array([0.5, 0.4])}, "step": np.float64(100.0)}}, path)
    ck = load_checkpoint(path)
    assert ck.class_names == CAMVID and ck.layout == "nvlabs"


def test_bookkeeping_does_not_open_the_door_to_code(tmp_path, nvlabs_obj):
    marker = tmp_path / "MARKER"
    path = tmp_path / "mixed.pth"
    torch.save({"state_dict": nvlabs_obj["state_dict"], "meta": {"seed": np.int64(1), "x": _Payload(marker)}}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()

"""Hostile or careless checkpoints: each one gives one clear SDK error naming what is wrong, never a traceback of
another type or a model that exports and labels everything wrongly (issue 12, items 1, 6, 11, 13)."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from converters.checkpoints import load_checkpoint
from converters.model import SegFormerConfig, config_for_variant
from converters.onnx_export import max_abs_logit_diff
from sdk.core.errors import CheckpointError, ExportError, LabelsError
from conftest import HF_MODEL

BIAS = "segformer.encoder.block.0.0.mlp.dense1.bias"


def _hf_copy(tmp_path: Path, *, edit_sd=None, edit_config=None, edit_pp=None) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(HF_MODEL, folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    if edit_sd is not None:
        sd = load_file(str(folder / "model.safetensors"))
        edit_sd(sd)
        save_file(sd, str(folder / "model.safetensors"))
    if edit_config is not None:
        cfg = json.loads((folder / "config.json").read_text())
        edit_config(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
    if edit_pp is not None:
        pp = json.loads((folder / "preprocessor_config.json").read_text())
        edit_pp(pp)
        (folder / "preprocessor_config.json").write_text(json.dumps(pp))
    return folder


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_weight_is_refused_by_name(tmp_path, value):  # item 1
    def poison(sd):
        sd[BIAS][3] = value

    with pytest.raises(CheckpointError, match=r"encoder\.stages\.0\.blocks\.0\.ffn\.fc1\.bias .*non-finite"):
        load_checkpoint(_hf_copy(tmp_path, edit_sd=poison))


def test_parity_comparison_is_nan_aware():  # item 1: max(worst, nan) must never pass as 0.0
    ref = np.zeros((1, 3, 4, 4), np.float32)
    got = ref.copy()
    got[0, 0, 0, 0] = np.nan
    with pytest.raises(ExportError, match="ONNX Runtime gives 1 non-finite"):
        max_abs_logit_diff(got, ref, (1, 3, 16, 16))
    with pytest.raises(ExportError, match="PyTorch gives 16 non-finite"):
        max_abs_logit_diff(ref[:, :1], ref[:, :1] + np.inf, (1, 3, 16, 16))
    assert max_abs_logit_diff(ref + 0.5, ref, (1, 3, 16, 16)) == 0.5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_still_load(tmp_path, dtype):  # keeps working
    def cast(sd):
        for k in sd:
            sd[k] = sd[k].to(dtype)

    ck = load_checkpoint(_hf_copy(tmp_path, edit_sd=cast))
    assert ck.config.variant == "b0" and all(p.dtype == torch.float32 for p in ck.model.parameters())


def test_missing_encoder_block_against_config(tmp_path):  # item 6
    def drop_block(sd):
        for k in [k for k in sd if k.startswith("segformer.encoder.block.3.1.")]:
            del sd[k]

    with pytest.raises(CheckpointError, match=r"depths=\[2, 2, 2, 2\], but the tensors give \[2, 2, 2, 1\]"):
        load_checkpoint(_hf_copy(tmp_path, edit_sd=drop_block))


def test_num_labels_against_head(tmp_path):  # item 6
    def nineteen(cfg):
        cfg["num_labels"] = 19
        del cfg["id2label"], cfg["label2id"]

    with pytest.raises(LabelsError, match="num_labels gives 19 classes, but the decode head has 11"):
        load_checkpoint(_hf_copy(tmp_path, edit_config=nineteen))


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(num_attention_heads=[1, 2, 3, 8]), r"num_heads: .*stage 2: 160 channels, 3 heads"),
    (lambda c: c.update(num_attention_heads=[1, 2, 5]), "num_heads: expected 4 entries"),
    (lambda c: c.update(strides=[4, 2, 2]), "strides: expected 4 entries"),
    (lambda c: c.update(num_attention_heads="8"), "num_attention_heads: expected a list"),
    (lambda c: c.update(id2label={"a": "x"}), "id2label"),
    (lambda c: c.update(id2label={str(i): i for i in range(11)}), "class names must be a list of non-empty"),
])
def test_config_that_cannot_build_the_network(tmp_path, edit, match):  # item 11
    with pytest.raises((CheckpointError, LabelsError), match=match):
        load_checkpoint(_hf_copy(tmp_path, edit_config=edit))


@pytest.mark.parametrize("size, match", [
    ({"shortest_edge": 512}, "not a fixed"), ({"height": "512", "width": 512}, "integer height"),
    ({"height": 8, "width": 512}, ">= 32"),
])
def test_preprocessor_sizes(tmp_path, size, match):  # item 11
    def edit(pp):
        pp.update(do_resize=True, size=size)

    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(_hf_copy(tmp_path, edit_pp=edit))


def test_preprocessor_int_size_and_bad_scale(tmp_path):
    ck = load_checkpoint(_hf_copy(tmp_path, edit_pp=lambda pp: pp.update(do_resize=True, size=480)))
    assert ck.preprocess.size_hw == (480, 480)
    shutil.rmtree(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="rescale_factor"):
        load_checkpoint(_hf_copy(tmp_path, edit_pp=lambda pp: pp.update(rescale_factor=0)))


def test_config_validation_direct():
    with pytest.raises(CheckpointError, match="num_classes"):
        config_for_variant("b0", 0)
    assert config_for_variant("b0", 1).num_classes == 1  # a 1-class head keeps working
    with pytest.raises(CheckpointError, match="layer_norm_eps"):
        SegFormerConfig(variant="x", hidden_sizes=(32, 64, 160, 256), depths=(2, 2, 2, 2), num_classes=2,
                        layer_norm_eps=0.0)


class _Reduce:
    """Pickles as numpy.dtype (an allow-listed bookkeeping name) followed by list and dict items: under the inert
    placeholders the second, guarded torch.load fails inside the unpickler (nothing runs)."""

    def __reduce__(self):
        return (np.dtype, ("f8",), None, iter([1, 2]), iter([("a", 1)]))


def test_crafted_bookkeeping_pickle_gives_checkpoint_error(tmp_path):  # item 13
    sd = load_file(str(HF_MODEL / "model.safetensors"))
    obj = {"state_dict": {"backbone.layers.0.0.projection.weight": torch.zeros(1)}, "meta": {"x": _Reduce()}}
    path = tmp_path / "iter_1.pth"
    torch.save(obj, path)
    with open(tmp_path / "iter_2.pth", "wb") as fh:
        pickle.dump(obj, fh)  # a plain (non-zip) pickle of the same
    with pytest.raises(CheckpointError, match="bookkeeping cannot be read safely"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "iter_2.pth")
    assert sd  # the genuine weights are untouched


def test_integer_weights_and_odd_metadata(tmp_path):  # found by the sweep
    from conftest import NVLABS_MODEL

    nv = torch.load(str(NVLABS_MODEL), map_location="cpu", weights_only=True)
    ints = {"state_dict": {k: (v.long() if "linear_pred" in k else v) for k, v in nv["state_dict"].items()}}
    torch.save(ints, tmp_path / "ints.pth")
    with pytest.raises(CheckpointError, match=r"decoder\.classifier\.\w+ \[.*\] is torch.int64; expected floating"):
        load_checkpoint(tmp_path / "ints.pth")
    torch.save({**nv, "meta": ["not", "a", "dict"]}, tmp_path / "meta.pth")  # no labels there: generic names
    assert load_checkpoint(tmp_path / "meta.pth").class_names[0] == "class_0"
    with pytest.raises(LabelsError, match="num_labels: expected an integer"):
        load_checkpoint(_hf_copy(tmp_path, edit_config=lambda c: c.update(num_labels="11")))


def test_export_cli_refuses_poisoned_checkpoint(tmp_path):  # item 1 end to end: exit 1, one line, no artifact
    import subprocess
    import sys

    def poison(sd):
        sd[BIAS][0] = float("inf")

    ck = _hf_copy(tmp_path, edit_sd=poison)
    res = subprocess.run([sys.executable, "-m", "sdk.cli", "export", str(ck), "--output", str(tmp_path / "a"), "-q"],
                         cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "Warning" not in ln]
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "ffn.fc1.bias" in lines[-1] and "non-finite" in lines[-1]
    assert not (tmp_path / "a" / "model.onnx").exists()

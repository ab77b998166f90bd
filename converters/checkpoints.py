"""Read trained SegFormer weights from the layouts users have, remap keys explicitly, load strictly.

Layouts:
- Hugging Face: a folder with ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``), key names as on the
  hub and as ``save_pretrained`` writes them (``segformer.encoder.block.0.0.attention.self.query.weight``, ...).
- NVlabs/SegFormer ``.pth``: an mmcv dict with ``state_dict`` (``backbone.block1.0.attn.kv.weight``, ...) and
  ``meta`` with ``CLASSES``/``PALETTE``.
- mmsegmentation 1.x ``.pth``: ``backbone.layers.*``, ``decode_head.convs.*``, ``decode_head.fusion_conv.*``.

``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is
refused, never executed. Variant, class count and class names come from the checkpoint itself.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from converters.checkpoint_checks import (check_dtypes, check_finite, check_hf_config, class_names_and_palette,
                                          preprocess_from_meta)
from converters.checkpoint_io import file_sha256, hf_config, read_safetensors, read_torch
from converters.model import SegFormer, SegFormerConfig, variant_name
from sdk.core.errors import CheckpointError
from sdk.core.preprocess import PreprocessSpec

StateDict = dict[str, torch.Tensor]

# Keys present in real checkpoints that the network does not use (mmseg's BaseDecodeHead always builds conv_seg,
# which SegFormer's NVlabs head leaves unused). Anything else left over is an error.
_UNUSED_KEYS = re.compile(r"^decode_head\.conv_seg\.(weight|bias)$|.*num_batches_tracked$")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A SegFormer ready to run: the module (eval mode), its config, labels, palette and preprocessing."""

    model: SegFormer
    config: SegFormerConfig
    class_names: list[str]
    palette: list[list[int]] | None
    preprocess: PreprocessSpec
    layout: str  # "huggingface" | "nvlabs" | "mmseg"
    source: str
    sha256: str


# ---------------------------------------------------------------------------------------- key remapping
def _linear_as_conv(w: torch.Tensor) -> torch.Tensor:
    return w[:, :, None, None] if w.ndim == 2 else w


# transformers >= 5 names its modules differently in memory (``model.state_dict()``) than on the hub; it renames
# them back in ``save_pretrained``. A ``torch.save(model.state_dict())`` made with it carries the in-memory names:
# these rules (the inverse of transformers' own conversion mapping) turn them into the hub names first.
_HF_V5_NAMES = [
    (re.compile(r"^segformer\.stages\.(\d+)\.patch_embeddings\."), r"segformer.encoder.patch_embeddings.\1."),
    (re.compile(r"^segformer\.stages\.(\d+)\.blocks\."), r"segformer.encoder.block.\1."),
    (re.compile(r"^segformer\.stages\.(\d+)\.layer_norm\."), r"segformer.encoder.layer_norm.\1."),
    (re.compile(r"\.attention\.q_proj\."), ".attention.self.query."),
    (re.compile(r"\.attention\.k_proj\."), ".attention.self.key."),
    (re.compile(r"\.attention\.v_proj\."), ".attention.self.value."),
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
    (re.compile(r"\.attention\.sequence_reduction\.sequence_reduction\."), ".attention.self.sr."),
    (re.compile(r"\.attention\.sequence_reduction\.layer_norm\."), ".attention.self.layer_norm."),
    (re.compile(r"\.mlp\.fc1\."), ".mlp.dense1."),
    (re.compile(r"\.mlp\.fc2\."), ".mlp.dense2."),
    (re.compile(r"\.layernorm_before\."), ".layer_norm_1."),
    (re.compile(r"\.layernorm_after\."), ".layer_norm_2."),
    (re.compile(r"^decode_head\.linear_projections\."), "decode_head.linear_c."),
]


def _hub_name(key: str) -> str:
    if not key.startswith(("segformer.stages.", "decode_head.linear_projections.")):
        return key
    for pattern, repl in _HF_V5_NAMES:
        key = pattern.sub(repl, key)
    return key


def remap_huggingface(sd: StateDict) -> StateDict:
    """transformers' SegformerForSemanticSegmentation keys (hub names, or transformers >= 5 in-memory names) -> ours."""
    out: StateDict = {}
    kv: dict[str, dict[str, torch.Tensor]] = {}
    enc = "segformer.encoder."
    v5 = any(k.startswith("segformer.stages.") for k in sd)
    for key, t in sd.items():
        key = _hub_name(key) if v5 else key
        if m := re.fullmatch(enc + r"patch_embeddings\.(\d)\.(proj|layer_norm)\.(\w+)", key):
            i, part, p = m.groups()
            out[f"encoder.stages.{i}.patch_embed.{'proj' if part == 'proj' else 'norm'}.{p}"] = t
        elif m := re.fullmatch(enc + r"block\.(\d)\.(\d+)\.(.+)\.(weight|bias)", key):
            i, j, mod, p = m.groups()
            pre = f"encoder.stages.{i}.blocks.{j}."
            if mod in ("attention.self.key", "attention.self.value"):
                kv.setdefault(pre + f"attn.kv.{p}", {})[mod.rsplit(".", 1)[1]] = t
                continue
            name = {
                "layer_norm_1": "norm1", "layer_norm_2": "norm2",
                "attention.self.query": "attn.q", "attention.self.sr": "attn.sr",
                "attention.self.layer_norm": "attn.norm", "attention.output.dense": "attn.proj",
                "mlp.dense1": "ffn.fc1", "mlp.dwconv.dwconv": "ffn.dwconv", "mlp.dense2": "ffn.fc2",
            }.get(mod)
            if name is None:
                raise CheckpointError(f"checkpoint: unknown Hugging Face SegFormer key {key!r}")
            out[pre + f"{name}.{p}"] = t
        elif m := re.fullmatch(enc + r"layer_norm\.(\d)\.(\w+)", key):
            out[f"encoder.stages.{m[1]}.norm.{m[2]}"] = t
        elif m := re.fullmatch(r"decode_head\.linear_c\.(\d)\.proj\.(\w+)", key):
            out[f"decoder.branches.{m[1]}.{m[2]}"] = _linear_as_conv(t)
        elif key.startswith("decode_head.linear_fuse."):
            out["decoder.fuse.conv." + key.rsplit(".", 1)[1]] = t
        elif key.startswith("decode_head.batch_norm."):
            out["decoder.fuse.bn." + key.rsplit(".", 1)[1]] = t
        elif key.startswith("decode_head.classifier."):
            out["decoder.classifier." + key.rsplit(".", 1)[1]] = t
        else:
            out["<unused>." + key] = t
    for name, parts in kv.items():
        if set(parts) != {"key", "value"}:
            raise CheckpointError(f"checkpoint: {name} needs both key and value weights, found only {sorted(parts)}")
        out[name] = torch.cat([parts["key"], parts["value"]], dim=0)
    return out


def remap_nvlabs(sd: StateDict) -> StateDict:
    """Original NVlabs/SegFormer (mmseg 0.x) keys -> ours."""
    out: StateDict = {}
    for key, t in sd.items():
        if m := re.fullmatch(r"backbone\.patch_embed(\d)\.(proj|norm)\.(\w+)", key):
            out[f"encoder.stages.{int(m[1]) - 1}.patch_embed.{m[2]}.{m[3]}"] = t
        elif m := re.fullmatch(r"backbone\.block(\d)\.(\d+)\.(.+)\.(weight|bias)", key):
            i, j, mod, p = m.groups()
            name = {"mlp.fc1": "ffn.fc1", "mlp.fc2": "ffn.fc2", "mlp.dwconv.dwconv": "ffn.dwconv"}.get(mod, mod)
            out[f"encoder.stages.{int(i) - 1}.blocks.{j}.{name}.{p}"] = t
        elif m := re.fullmatch(r"backbone\.norm(\d)\.(\w+)", key):
            out[f"encoder.stages.{int(m[1]) - 1}.norm.{m[2]}"] = t
        elif m := re.fullmatch(r"decode_head\.linear_c(\d)\.proj\.(\w+)", key):
            out[f"decoder.branches.{int(m[1]) - 1}.{m[2]}"] = _linear_as_conv(t)
        elif m := re.fullmatch(r"decode_head\.linear_fuse\.(conv|bn)\.(\w+)", key):
            out[f"decoder.fuse.{m[1]}.{m[2]}"] = t
        elif m := re.fullmatch(r"decode_head\.linear_pred\.(\w+)", key):
            out[f"decoder.classifier.{m[1]}"] = t
        else:
            out["<unused>." + key] = t
    return out


def remap_mmseg(sd: StateDict) -> StateDict:
    """mmsegmentation 1.x ``MixVisionTransformer`` + ``SegformerHead`` keys -> ours.

    mmseg runs q/k/v through ``nn.MultiheadAttention`` (``in_proj_weight`` = [q; k; v]), its Mix-FFN linears are 1x1
    convs, its head has BN+ReLU on each branch, and it concatenates branches stage 1 first (we concatenate stage 4
    first, as the paper's code does): the fuse conv's input channels are reordered here to match.
    """
    out: StateDict = {}
    num_branches = len({k.split(".")[2] for k in sd if k.startswith("decode_head.convs.")})
    for key, t in sd.items():
        if m := re.fullmatch(r"backbone\.layers\.(\d)\.0\.(projection|norm)\.(\w+)", key):
            out[f"encoder.stages.{m[1]}.patch_embed.{'proj' if m[2] == 'projection' else 'norm'}.{m[3]}"] = t
        elif m := re.fullmatch(r"backbone\.layers\.(\d)\.1\.(\d+)\.(.+)", key):
            i, j, rest = m.groups()
            pre = f"encoder.stages.{i}.blocks.{j}."
            if rest in ("attn.attn.in_proj_weight", "attn.attn.in_proj_bias"):
                p = "weight" if rest.endswith("weight") else "bias"
                c = t.shape[0] // 3
                out[pre + f"attn.q.{p}"], out[pre + f"attn.kv.{p}"] = t[:c], t[c:]
                continue
            name = {
                "attn.attn.out_proj.weight": "attn.proj.weight", "attn.attn.out_proj.bias": "attn.proj.bias",
                "ffn.layers.0.weight": "ffn.fc1.weight", "ffn.layers.0.bias": "ffn.fc1.bias",
                "ffn.layers.1.weight": "ffn.dwconv.weight", "ffn.layers.1.bias": "ffn.dwconv.bias",
                "ffn.layers.4.weight": "ffn.fc2.weight", "ffn.layers.4.bias": "ffn.fc2.bias",
            }.get(rest)
            if name is None and re.fullmatch(r"(norm1|norm2|attn\.sr|attn\.norm)\.\w+", rest):
                name = rest
            if name is None:
                raise CheckpointError(f"checkpoint: unknown mmsegmentation MiT key {key!r}")
            out[pre + name] = t[:, :, 0, 0] if name.startswith(("ffn.fc1.weight", "ffn.fc2.weight")) else t
        elif m := re.fullmatch(r"backbone\.layers\.(\d)\.2\.(\w+)", key):
            out[f"encoder.stages.{m[1]}.norm.{m[2]}"] = t
        elif m := re.fullmatch(r"decode_head\.convs\.(\d)\.(conv|bn)\.(\w+)", key):
            out[f"decoder.branches.{m[1]}.{m[2]}.{m[3]}"] = t
        elif m := re.fullmatch(r"decode_head\.fusion_conv\.(conv|bn)\.(\w+)", key):
            if m[1] == "conv" and m[2] == "weight":
                t = torch.cat(list(t.chunk(num_branches, dim=1))[::-1], dim=1)
            out[f"decoder.fuse.{m[1]}.{m[2]}"] = t
        elif m := re.fullmatch(r"decode_head\.conv_seg\.(\w+)", key):
            out[f"decoder.classifier.{m[1]}"] = t
        else:
            out["<unused>." + key] = t
    return out


def to_huggingface(sd: StateDict) -> StateDict:
    """Ours -> Hugging Face keys (used to ship the demo model in the layout users know)."""
    out: StateDict = {}
    for key, t in sd.items():
        if m := re.fullmatch(r"encoder\.stages\.(\d)\.patch_embed\.(proj|norm)\.(\w+)", key):
            out[f"segformer.encoder.patch_embeddings.{m[1]}.{'proj' if m[2] == 'proj' else 'layer_norm'}.{m[3]}"] = t
        elif m := re.fullmatch(r"encoder\.stages\.(\d)\.blocks\.(\d+)\.(.+)\.(\w+)", key):
            i, j, mod, p = m.groups()
            pre = f"segformer.encoder.block.{i}.{j}."
            if mod == "attn.kv":
                k, v = t.chunk(2, dim=0)
                out[pre + f"attention.self.key.{p}"], out[pre + f"attention.self.value.{p}"] = k, v
                continue
            name = {
                "norm1": "layer_norm_1", "norm2": "layer_norm_2", "attn.q": "attention.self.query",
                "attn.sr": "attention.self.sr", "attn.norm": "attention.self.layer_norm",
                "attn.proj": "attention.output.dense", "ffn.fc1": "mlp.dense1", "ffn.dwconv": "mlp.dwconv.dwconv",
                "ffn.fc2": "mlp.dense2",
            }[mod]
            out[pre + f"{name}.{p}"] = t
        elif m := re.fullmatch(r"encoder\.stages\.(\d)\.norm\.(\w+)", key):
            out[f"segformer.encoder.layer_norm.{m[1]}.{m[2]}"] = t
        elif m := re.fullmatch(r"decoder\.branches\.(\d)\.(\w+)", key):
            out[f"decode_head.linear_c.{m[1]}.proj.{m[2]}"] = t[:, :, 0, 0] if t.ndim == 4 else t
        elif m := re.fullmatch(r"decoder\.fuse\.conv\.(\w+)", key):
            out[f"decode_head.linear_fuse.{m[1]}"] = t
        elif m := re.fullmatch(r"decoder\.fuse\.bn\.(\w+)", key):
            out[f"decode_head.batch_norm.{m[1]}"] = t
        elif m := re.fullmatch(r"decoder\.classifier\.(\w+)", key):
            out[f"decode_head.classifier.{m[1]}"] = t
        else:
            raise CheckpointError(f"cannot express {key!r} in the Hugging Face layout (mmseg-style branch norm?)")
    return out


# ------------------------------------------------------------------------------------------ config inference
def infer_config(sd: StateDict, *, num_heads: tuple[int, ...] | None, eps: tuple[float, float, float],
                 strides: tuple[int, ...] | None = None) -> SegFormerConfig:
    """Architecture from tensor shapes (our key names). Heads cannot be read from weights: every published MiT
    uses (1, 2, 5, 8), which is the default when the checkpoint does not say."""
    try:
        hidden = tuple(sd[f"encoder.stages.{i}.patch_embed.proj.weight"].shape[0] for i in range(4))
        patch = tuple(sd[f"encoder.stages.{i}.patch_embed.proj.weight"].shape[2] for i in range(4))
        depths = tuple(
            len({k.split(".")[4] for k in sd if k.startswith(f"encoder.stages.{i}.blocks.")}) for i in range(4)
        )
        sr = tuple(
            sd[f"encoder.stages.{i}.blocks.0.attn.sr.weight"].shape[2]
            if f"encoder.stages.{i}.blocks.0.attn.sr.weight" in sd else 1
            for i in range(4)
        )
        mlp = tuple(sd[f"encoder.stages.{i}.blocks.0.ffn.fc1.weight"].shape[0] // hidden[i] for i in range(4))
        width = sd["decoder.fuse.conv.weight"].shape[0]
        classes = sd["decoder.classifier.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint: the SegFormer tensor {exc.args[0]!r} is missing (after key remapping). "
            "Is this a complete SegFormer segmentation checkpoint (encoder and decode head)?"
        ) from None
    return SegFormerConfig(
        variant=variant_name(hidden, depths), hidden_sizes=hidden, depths=depths, num_classes=classes,
        num_heads=tuple(num_heads or (1, 2, 5, 8)), sr_ratios=sr, mlp_ratios=mlp, patch_sizes=patch,
        strides=tuple(strides or (4, 2, 2, 2)), decoder_width=width,
        decoder_branch_norm="decoder.branches.0.bn.weight" in sd,
        layer_norm_eps=eps[0], patch_norm_eps=eps[1], sr_norm_eps=eps[2],
    )


# ------------------------------------------------------------------------------------------------- reading
# (file reading itself, safe unpickling included, is in converters/checkpoint_io.py)
def _detect_layout(keys: list[str]) -> str:
    if any(k.startswith(("segformer.encoder.", "segformer.stages.")) for k in keys):
        return "huggingface"
    if any(k.startswith("backbone.block1.") for k in keys):
        return "nvlabs"
    if any(k.startswith("backbone.layers.") for k in keys):
        return "mmseg"
    sample = ", ".join(keys[:3])
    raise CheckpointError(
        f"checkpoint: keys look like none of the SegFormer layouts (Hugging Face 'segformer.encoder.*', NVlabs "
        f"'backbone.block1.*', mmsegmentation 1.x 'backbone.layers.*'); first keys: {sample}"
    )


def read_checkpoint(path: str | Path) -> tuple[StateDict, dict, str]:
    """Returns (raw state dict, metadata dict, layout). Metadata: hf ``config``/``preprocessor`` or mmcv ``meta``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file or folder")
    meta: dict = {}
    if path.is_dir():
        if not (path / "config.json").exists():
            raise CheckpointError(
                f"checkpoint {path}: a folder must be a Hugging Face model folder with config.json "
                "and model.safetensors or pytorch_model.bin"
            )
        meta["config"] = hf_config(path)
        if (path / "preprocessor_config.json").exists():
            meta["preprocessor"] = hf_config(path, "preprocessor_config.json")
        if (path / "model.safetensors").exists():
            sd = read_safetensors(path / "model.safetensors")
        elif (path / "pytorch_model.bin").exists():
            sd = read_torch(path / "pytorch_model.bin")
        else:
            raise CheckpointError(f"checkpoint {path}: expected model.safetensors or pytorch_model.bin in it")
    elif path.suffix == ".safetensors":
        sd = read_safetensors(path)
        if (path.parent / "config.json").exists():
            meta["config"] = hf_config(path.parent)
    else:
        obj = read_torch(path)
        if path.suffix == ".bin" and (path.parent / "config.json").exists():  # like .safetensors above: the
            meta["config"] = hf_config(path.parent)  # config gives the heads, strides and labels
        if isinstance(obj.get("state_dict"), dict):
            sd, meta = obj["state_dict"], obj.get("meta")
            meta = dict(meta) if isinstance(meta, dict) else {}  # metadata of another shape carries no labels
        elif isinstance(obj.get("model"), dict):
            sd = obj["model"]
        else:
            sd = obj
    sd = {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"checkpoint {path}: contains no tensors")
    return sd, meta, _detect_layout(list(sd))


def load_checkpoint(path: str | Path, *, class_names: list[str] | None = None,
                    layer_norm_eps: float | None = None) -> LoadedCheckpoint:
    """Read, remap and strictly load a SegFormer checkpoint in any supported layout (see module docstring).

    ``class_names`` overrides the checkpoint's labels; its length must equal the head's class count.
    ``layer_norm_eps`` overrides the eps of the blocks' and stages' LayerNorms. Defaults per layout: Hugging Face
    and NVlabs 1e-5 (transformers' port, which runs the NVlabs weights published on the hub with 1e-5, so both
    layouts of the same weights give identical logits); mmsegmentation 1.x 1e-6 (its own MixVisionTransformer).
    The NVlabs training code itself used 1e-6 in blocks and stage norms: pass 1e-6 to reproduce it bit for bit
    (on the shared B0 the two differ by ~1e-4 in logits, with identical masks).
    """
    path = Path(path)
    raw, meta, layout = read_checkpoint(path)
    sd, cfg = _remapped(raw, meta, layout, path, labels_given=class_names is not None)
    if layer_norm_eps is not None:
        cfg = dataclasses.replace(cfg, layer_norm_eps=float(layer_norm_eps))
    model, sd = _strict_model(sd, cfg, layout, path)
    names, palette = class_names_and_palette(meta, layout, path, class_names, num_classes=cfg.num_classes,
                                             classifier_shape=list(sd["decoder.classifier.weight"].shape))
    return LoadedCheckpoint(model=model, config=cfg, class_names=names, palette=palette,
                            preprocess=preprocess_from_meta(meta, layout, path), layout=layout, source=str(path),
                            sha256=file_sha256(path))


def _remapped(raw: dict, meta: dict, layout: str, path: Path, *, labels_given: bool) -> tuple[dict, SegFormerConfig]:
    """(state dict in our key names, config inferred from it): the layout's remapping, and for Hugging Face the
    heads and strides config.json gives, checked against the weights."""
    if layout == "huggingface":
        sd = remap_huggingface(raw)
        hf = meta.get("config", {})
        if not isinstance(hf, dict):
            raise CheckpointError(f"checkpoint {path}: config.json must hold a JSON object, got {type(hf).__name__}")
        heads, strides = hf.get("num_attention_heads"), hf.get("strides")
        for name, value in (("num_attention_heads", heads), ("strides", strides)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise CheckpointError(f"checkpoint {path}: config.json {name}: expected a list of 4 integers, "
                                      f"got {value!r}")
        cfg = infer_config(sd, num_heads=heads, eps=(1e-5, 1e-5, 1e-5), strides=strides)
        if "config" in meta:
            check_hf_config(cfg, hf, path, labels_given=labels_given)
    elif layout == "nvlabs":
        sd = remap_nvlabs(raw)
        cfg = infer_config(sd, num_heads=None, eps=(1e-5, 1e-5, 1e-5))
    else:
        sd = remap_mmseg(raw)
        cfg = infer_config(sd, num_heads=None, eps=(1e-6, 1e-6, 1e-6))
    return sd, cfg


def _strict_model(sd: dict, cfg: SegFormerConfig, layout: str, path: Path) -> tuple[SegFormer, dict]:
    """(the model in eval mode, the float32 state dict it loaded): every key of the checkpoint used (beside the
    known training leftovers), every parameter present, with its shape, dtype checked and values finite."""
    unused = [k.removeprefix("<unused>.") for k in sd if k.startswith("<unused>.")]
    unexpected = [k for k in unused if not _UNUSED_KEYS.match(k)]
    if unexpected:
        raise CheckpointError(
            f"checkpoint {path}: {len(unexpected)} keys are not part of a SegFormer ({layout} layout), e.g. "
            f"{unexpected[:3]}. Is it a SegFormer segmentation checkpoint?"
        )
    check_dtypes(sd, path)
    sd = {k: v.float() for k, v in sd.items() if not k.startswith("<unused>.")}
    check_finite(sd, path)
    model = SegFormer(cfg)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(expected - set(sd)), sorted(set(sd) - expected - {k for k in sd if "num_batches" in k})
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {path}: does not match a SegFormer-{cfg.variant} ({layout} layout): "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected {extra[:4]}"
        )
    for k, v in model.state_dict().items():
        if k in sd and sd[k].shape != v.shape:
            raise CheckpointError(f"checkpoint {path}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict(sd, strict=False)  # strictness enforced above; num_batches_tracked is bookkeeping
    model.eval()
    return model, sd

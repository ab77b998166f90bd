"""Checks a loaded checkpoint must pass before it is exported: finite weights, tensors that agree with the
checkpoint's own ``config.json``, and a preprocessor config in a form segedge can represent; and what its metadata
says (class names, palette, preprocessing), checked against the head.

Used by ``converters.checkpoints.load_checkpoint``; each failure is one line naming the tensor or field and the fix.
"""
from __future__ import annotations

from pathlib import Path

import torch

from sdk.core.errors import CheckpointError, LabelsError
from sdk.core.manifest import class_name_problem
from sdk.core.preprocess import PreprocessSpec

# config.json field -> SegFormerConfig field, for the architecture fields transformers' SegformerConfig has
_HF_FIELDS = {"hidden_sizes": "hidden_sizes", "depths": "depths", "num_attention_heads": "num_heads",
              "sr_ratios": "sr_ratios", "mlp_ratios": "mlp_ratios", "patch_sizes": "patch_sizes",
              "strides": "strides", "decoder_hidden_size": "decoder_width", "num_channels": "num_channels"}


def check_dtypes(sd: dict[str, torch.Tensor], path: Path) -> None:
    """Weights must be floating point (fp32/fp16/bf16/fp64): an integer or bool tensor would be cast to float
    silently, with its fractions already gone. BatchNorm's ``num_batches_tracked`` counter is the exception."""
    for key, t in sd.items():
        if not key.startswith("<unused>.") and not key.endswith("num_batches_tracked") and not t.is_floating_point():
            raise CheckpointError(f"checkpoint {path}: tensor {key} {list(t.shape)} is {t.dtype}; expected floating "
                                  "point weights (float32, float16 or bfloat16). Re-save the checkpoint from the "
                                  "trained model without casting.")


def check_finite(sd: dict[str, torch.Tensor], path: Path) -> None:
    """Every floating tensor must be finite: one inf/NaN weight makes every logit NaN, and argmax of NaN is class 0
    everywhere (a silently wrong model)."""
    for key, t in sd.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            kinds = [k for k, m in (("NaN", torch.isnan(t)), ("inf", torch.isinf(t))) if bool(m.any())]
            raise CheckpointError(
                f"checkpoint {path}: tensor {key} {list(t.shape)} has {bad} non-finite value(s) "
                f"({'/'.join(kinds)}); expected finite weights. The file is corrupt or training diverged: use an "
                "earlier checkpoint, or re-save it from a healthy model.")


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_hf_config(cfg, hf: dict, path: Path, *, labels_given: bool = False) -> None:
    """The architecture read from the tensors must be the one ``config.json`` states (a config that contradicts
    the weights means missing tensors or a wrong head). ``cfg``: the SegFormerConfig inferred from the tensors."""
    if not isinstance(hf, dict):
        raise CheckpointError(f"checkpoint {path}: config.json must hold a JSON object, got {type(hf).__name__}")
    for hf_name, name in _HF_FIELDS.items():
        if hf_name not in hf or name in ("num_heads", "strides"):
            continue  # heads and strides cannot be read from tensors: the config's values are used as they are
        stated, found = _as_tuple(hf[hf_name]), getattr(cfg, name)
        if stated != found:
            raise CheckpointError(
                f"checkpoint {path}: config.json says {hf_name}={list(stated) if isinstance(stated, tuple) else stated}"
                f", but the tensors give {list(found) if isinstance(found, tuple) else found}. Tensors are missing "
                "or the config belongs to another model: use the config.json saved with these weights.")
    id2label = hf.get("id2label")
    if id2label is not None and not isinstance(id2label, dict):
        raise LabelsError(f"checkpoint {path}: config.json id2label: expected an object {{\"0\": name, ...}}, got "
                          f"{type(id2label).__name__}")
    if id2label and not labels_given:
        keys = sorted(id2label)
        if not all(str(k).isdigit() for k in keys) or sorted(int(k) for k in keys) != list(range(len(keys))):
            raise LabelsError(f"checkpoint {path}: config.json id2label: expected keys 0..{len(keys) - 1}, got "
                              f"{keys[:5]}{'...' if len(keys) > 5 else ''}")
    num_labels = hf.get("num_labels")
    if num_labels is not None and (not isinstance(num_labels, int) or isinstance(num_labels, bool)):
        raise LabelsError(f"checkpoint {path}: config.json num_labels: expected an integer, got {num_labels!r}")
    if num_labels is not None and num_labels != cfg.num_classes and not labels_given:
        # (a wrong id2label is reported by load_checkpoint with the same fix; names passed in override both)
        raise LabelsError(
            f"checkpoint {path}: config.json num_labels gives {num_labels} classes, but the decode head has "
            f"{cfg.num_classes} (decoder.classifier.weight [{cfg.num_classes}, ...]). Use the config saved with "
            f"these weights, or pass {cfg.num_classes} names with class_names= (or --labels).")


def preprocess_from_hf(pp: dict, path: Path) -> PreprocessSpec:
    """``preprocessor_config.json`` (SegformerImageProcessor's fields) -> PreprocessSpec on the 0..255 scale."""
    where = f"checkpoint {path}: preprocessor_config.json"
    if not isinstance(pp, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(pp).__name__}")
    try:
        scale = float(pp.get("rescale_factor", 1 / 255)) if pp.get("do_rescale", True) else 1.0
        if not 0 < scale < float("inf"):
            raise ValueError(f"rescale_factor {scale}")
        mean, std = pp.get("image_mean", [0.485, 0.456, 0.406]), pp.get("image_std", [0.229, 0.224, 0.225])
        if pp.get("do_normalize", True):
            mean, std = [float(m) / scale for m in mean], [float(s) / scale for s in std]
        else:
            mean, std = [0.0, 0.0, 0.0], [1 / scale] * 3
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: rescale_factor, image_mean and image_std must be positive numbers (3 "
                              f"per list), got an invalid value ({exc}). Fix the file.") from None
    size_hw = None
    if pp.get("do_resize", True):
        size = pp.get("size", {"height": 512, "width": 512})
        if isinstance(size, int) and not isinstance(size, bool):
            size_hw = (size, size)
        elif isinstance(size, (list, tuple)) and len(size) == 2:
            size_hw = (size[0], size[1])
        elif isinstance(size, dict) and {"height", "width"} <= set(size):
            size_hw = (size["height"], size["width"])
        else:
            raise CheckpointError(
                f"{where}: size {size!r} is not a fixed (height, width): segedge resizes every frame to one "
                "network size, as SegformerImageProcessor does. Write size as {\"height\": H, \"width\": W}, or "
                "set \"do_resize\": false to run at each image's own size (then pass --size H W to export).")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in size_hw):
            raise CheckpointError(f"{where}: size {size!r}: expected integer height and width")
    resize_mode = "bilinear"
    if size_hw is not None:  # transformers resizes with PIL: antialiased bilinear when shrinking
        resample = pp.get("resample", 2)
        if resample != 2:
            raise CheckpointError(f"{where}: resample {resample!r}: expected 2 (PIL bilinear, SegformerImageProcessor"
                                  "'s default), the filter segedge reproduces. Set \"resample\": 2, or \"do_resize\": "
                                  "false and pass --size H W to export.")
        resize_mode = "pil_bilinear"
    from sdk.core.errors import InputError

    try:
        return PreprocessSpec(size_hw=size_hw, mean=tuple(mean), std=tuple(std), resize_mode=resize_mode)
    except (InputError, TypeError) as exc:
        raise CheckpointError(f"{where}: {exc}. Fix the file.") from None


def labels_from_meta(meta: dict, layout: str, path: Path) -> tuple[list[str] | None, list[list[int]] | None]:
    """(class names, palette) from a checkpoint's metadata (config.json's id2label; mmseg's dataset_meta or
    CLASSES/PALETTE), None where it has none; a malformed palette is dropped, malformed names are a LabelsError."""
    if layout == "huggingface" and "config" in meta:
        id2label = meta["config"].get("id2label") or {}
        names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
        palette = None
    else:
        src = meta.get("dataset_meta") or meta  # mmseg 1.x: meta.dataset_meta.{classes,palette}; 0.x: CLASSES/PALETTE
        src = src if isinstance(src, dict) else {}
        names = src.get("classes") or src.get("CLASSES")
        palette = src.get("palette") or src.get("PALETTE")
    if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n
                                                                              for n in names)):
        raise LabelsError(f"checkpoint {path}: its class names must be a list of non-empty strings, got "
                          f"{str(names)[:80]!r}. Pass the names with --labels (class_names=).")
    problem = next((class_name_problem(n) for n in names or () if class_name_problem(n)), None)
    if problem:
        raise LabelsError(f"checkpoint {path}: expected class names of one line each, got {problem}. Pass the "
                          "names with --labels (class_names=).")
    if palette is not None:
        ok = isinstance(palette, (list, tuple)) and all(
            isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette)
        palette = [list(map(int, c)) for c in palette] if ok else None  # a bad palette falls back to the default
    return (list(names) if names else None), (palette or None)


def preprocess_from_meta(meta: dict, layout: str, path: Path) -> PreprocessSpec:
    """The preprocessing the checkpoint was trained with (Hugging Face's preprocessor config), else the default."""
    pp = meta.get("preprocessor")
    if layout == "huggingface" and pp:
        return preprocess_from_hf(pp, path)
    return PreprocessSpec(size_hw=None)  # ImageNet mean/std on 0..255, the convention of all three layouts


def class_names_and_palette(meta: dict, layout: str, path: Path, class_names: list[str] | None, *, num_classes: int,
                            classifier_shape: list[int]) -> tuple[list[str], list | None]:
    """(class names, palette or None): those given (one per output channel), else the checkpoint's, else
    class_<i>; a palette of the wrong length is dropped."""
    try:
        names, palette = labels_from_meta(meta, layout, path)
    except LabelsError:
        if class_names is None:
            raise
        names, palette = None, None  # the names given replace the checkpoint's unusable ones
    head = f"decode head has {num_classes} classes (classifier weight {classifier_shape})"
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) and n.strip() for n in class_names):
            raise LabelsError(f"class_names: expected a list of {num_classes} non-empty strings, got "
                              f"{str(class_names)[:80]!r}")
        problem = next((class_name_problem(n) for n in class_names if class_name_problem(n)), None)
        if problem:
            raise LabelsError(f"class_names (--labels): expected one line of text per name, got {problem}")
        if len(class_names) != num_classes:
            raise LabelsError(f"checkpoint {head} but {len(class_names)} class names were given. "
                              f"Pass exactly {num_classes} names, one per output channel.")
        names = list(class_names)
    elif names is not None and len(names) != num_classes:
        raise LabelsError(f"checkpoint {head} but its metadata lists {len(names)} class names. "
                          "Pass the right names with class_names= (or --labels).")
    names = names or [f"class_{i}" for i in range(num_classes)]
    if palette is not None and len(palette) != num_classes:
        palette = None
    return names, palette

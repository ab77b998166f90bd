"""Training-free 2x2 token merging in SegFormer's attention (SegFormer++, Kienzle et al., arXiv 2405.14467).

In the chosen stages each block's attention runs its queries on 2x2-merged tokens and spreads the result back:
``q = Linear_q(avgpool2x2(x))`` (a quarter of the queries), keys/values from the full tokens as before (with the
stage's spatial reduction), then ``proj`` on the merged tokens and each merged token copied back to the 2x2 tokens
it came from (nearest "unmerge"). The weights are the checkpoint's own; nothing is retrained. This is the paper's
``n2d`` (2D neighbour merging) of the queries, ``q_mode='n2d', q_s=(2, 2)``: on B5 Cityscapes 1024x2048 it reported
1.90x for -0.43 mIoU with all four stages merged. Odd map sizes pool with ``ceil_mode`` (the last row/column is its
own window, averaged over the tokens that exist) and unmerge crops back, so any input size works.

The merge is static data movement: ``AveragePool`` (ceil_mode), Reshape/Transpose, a nearest ``Resize``; the
exported graph is portable ONNX (OpenVINO and TensorRT read it) and also fits ``converters.ort_graph``'s form (the
queries go into the same fused ``MultiHeadAttention``). Module and attribute names (``attn.q``, ``attn.kv``,
``attn.proj``...) stay those of the unmerged attention, so ONNX node names, INT8 recipes and the sensitivity
analysis' block groups are unchanged.

Which stages: stages 1 and 2 by default, the high-resolution ones, where the queries are many (1/4 and 1/8 of the
input); merging stages 3-4 (1/16, 1/32) saves little time and costs more accuracy. Measured on this project's B0 by
``benchmarks/bench_speed_menu.py`` (docs/BENCHMARKS.md). The option itself (``TokenMerge``, ``parse_token_merge``)
is in ``converters.token_merge_spec``, which needs no torch.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from converters.token_merge_spec import TokenMerge
from sdk.core.result import agreeing_pixels

# ---------------------------------------------------------------------------------------- merge / unmerge
def merge_2x2(x: torch.Tensor, h, w, channels: int) -> torch.Tensor:
    """(B, h*w, C) tokens -> (B, ceil(h/2)*ceil(w/2), C): each 2x2 neighbourhood averaged (partial at odd edges).
    Reshape to (B, h, w, C) + Transpose, as ``ort_graph`` writes token <-> map conversions (its layout passes cancel
    them), then AveragePool with ceil_mode."""
    b = x.shape[0]
    m = x.reshape(b, h, w, channels).permute(0, 3, 1, 2)
    p = F.avg_pool2d(m, kernel_size=2, stride=2, ceil_mode=True)
    return p.permute(0, 2, 3, 1).reshape(b, -1, channels)


def unmerge_2x2(y: torch.Tensor, h, w, channels: int) -> torch.Tensor:
    """(B, ceil(h/2)*ceil(w/2), C) -> (B, h*w, C): each merged token copied to the 2x2 tokens it came from.
    A nearest Resize to (h, w): its source index floor(i * ceil(h/2) / h) is i // 2 for every i < h, odd h too, so
    it equals repeat-then-crop exactly. (An Unsqueeze/Expand/Slice form of the same copy defeats ONNX Runtime's
    symbolic shape inference, which its INT8 quantizer needs.)"""
    b = y.shape[0]
    m = y.reshape(b, (h + 1) // 2, (w + 1) // 2, channels).permute(0, 3, 1, 2)
    up = F.interpolate(m, size=(h, w), mode="nearest")
    return up.permute(0, 2, 3, 1).reshape(b, -1, channels)


# --------------------------------------------------------------------------------------- merged attention
class MergedAttention(nn.Module):
    """``converters.model.EfficientSelfAttention`` with 2x2-merged queries; the same parameters and names."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.heads, self.scale, self.sr_ratio = attn.heads, attn.scale, attn.sr_ratio
        self.q, self.kv, self.proj = attn.q, attn.kv, attn.proj
        if attn.sr_ratio > 1:
            self.sr, self.norm = attn.sr, attn.norm

    def forward(self, x: torch.Tensor, h, w) -> torch.Tensor:
        b, _, c = x.shape
        d = c // self.heads
        q = self.q(merge_2x2(x, h, w, self.q.in_features))
        q = q.reshape(b, -1, self.heads, d).permute(0, 2, 1, 3)
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2))
        kv = self.kv(kv_in).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        attn = torch.softmax((q @ kv[0].transpose(-2, -1)) * self.scale, dim=-1)
        out = (attn @ kv[1]).transpose(1, 2).reshape(b, -1, c)
        return unmerge_2x2(self.proj(out), h, w, self.proj.out_features)


class MergedOrtAttention(nn.Module):
    """``converters.ort_graph.OrtAttention`` with 2x2-merged queries (still one fused MultiHeadAttention node)."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.heads, self.sr_ratio = attn.heads, attn.sr_ratio
        self.q, self.k, self.v, self.proj = attn.q, attn.k, attn.v, attn.proj
        if attn.sr_ratio > 1:
            self.sr, self.norm = attn.sr, attn.norm

    def forward(self, x: torch.Tensor, h, w) -> torch.Tensor:
        from converters.ort_graph import MultiHeadAttention, to_map, to_tokens

        if self.sr_ratio > 1:
            kv_in = self.norm(to_tokens(self.sr(to_map(x, h, w)), x.shape[0], self.sr.out_channels))
        else:
            kv_in = x
        q = self.q(merge_2x2(x, h, w, self.q.in_features))
        out = self.proj(MultiHeadAttention.apply(q, self.k(kv_in), self.v(kv_in), self.heads))
        return unmerge_2x2(out, h, w, self.proj.out_features)


def _merged(attn: nn.Module) -> nn.Module:
    from converters.model import EfficientSelfAttention
    from converters.ort_graph import OrtAttention

    if isinstance(attn, EfficientSelfAttention):
        return MergedAttention(attn)
    if isinstance(attn, OrtAttention):
        return MergedOrtAttention(attn)
    raise TypeError(f"token merge: expected an EfficientSelfAttention or OrtAttention, got {type(attn).__name__}")


def merge_encoder(encoder: nn.Module, merge: TokenMerge) -> nn.Module:
    """A copy of a ``MixTransformer`` / ``OrtMixTransformer`` whose attention in ``merge.stages`` merges 2x2 query
    tokens; the weights are shared with (copied from) the original, which is left untouched. "none": a plain copy."""
    if not isinstance(getattr(encoder, "stages", None), nn.ModuleList) or len(encoder.stages) != 4:
        raise TypeError(f"token merge: expected a MixTransformer or OrtMixTransformer (4 stages), got "
                        f"{type(encoder).__name__}")
    out = copy.deepcopy(encoder)
    if merge.enabled:
        for number in merge.stages:
            for blk in out.stages[number - 1].blocks:
                blk.attn = _merged(blk.attn)
    return out.eval()


class MergedSegFormer(nn.Module):
    """The PyTorch reference of a merged export: ``pixel_values (B, 3, H, W) -> logits (B, K, H/4, W/4)`` from a
    ``converters.model.SegFormer`` with its encoder merged as ``merge`` says and its own decoder."""

    def __init__(self, model: nn.Module, merge: TokenMerge) -> None:
        super().__init__()
        self.config = model.config
        self.encoder = merge_encoder(model.encoder, merge)
        self.decoder = model.decoder
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixel_values))


def merge_summary(merge: TokenMerge, config) -> dict:
    """Manifest record (``extra.token_merge``): the merge, its command-line spec, the share of queries attention
    still computes in the merged stages, and how many blocks merge."""
    blocks = sum(config.depths[s - 1] for s in merge.stages) if merge.enabled else 0
    return merge.to_dict() | {"spec": merge.spec, "query_fraction": 0.25 if merge.enabled else 1.0,
                              "blocks_merged": blocks}


def export_modules(model: nn.Module, graph: str, merge: TokenMerge) -> tuple[nn.Module, nn.Module]:
    """(module to trace, PyTorch reference it must match) for ``converters.onnx_export``: without a merge the
    ``ExportSegFormer`` of ``graph`` and the model itself; with one, both merged (the reference in the plain form)."""
    from converters.folded import ExportSegFormer

    net = ExportSegFormer(model, graph)
    if not merge.enabled:
        return net, model
    net.encoder = merge_encoder(net.encoder, merge)
    return net.eval(), MergedSegFormer(model, merge)


def agreement_with_unmerged(merged: nn.Module, model: nn.Module, inputs: list) -> dict:
    """How far the merged network is from the unmerged one on ``inputs`` ((B, 3, H, W) float32 arrays): share of
    equal argmax class ids at 1/4 resolution and max |logit difference|. Both exactly 1 and 0 when nothing merges."""
    equal = total = 0
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            t = torch.from_numpy(x)
            a, b = merged(t), model(t)
            same, pixels = agreeing_pixels(a.argmax(1).numpy(), b.argmax(1).numpy())
            equal, total = equal + same, total + pixels
            worst = max(worst, float((a - b).abs().max()))
    return {"argmax_agreement": equal / total, "max_abs_logit": worst, "frames": sum(len(x) for x in inputs)}

"""The MiT encoder in the form ONNX Runtime runs fastest on CPUs (``export_onnx(..., graph="onnxruntime")``).

Same weights, same function as ``converters.model.MixTransformer`` (the export's parity check verifies it); only the
graph differs:
- attention is one ``com.microsoft.MultiHeadAttention`` node (ONNX Runtime's fused CPU kernel) instead of
  MatMul/Softmax/MatMul with head transposes, and the k/v Linear is split into two Linears;
- Mix-FFN runs as convolutions on the (B, C, H, W) map -- fc1 and fc2 as 1x1 convs around the depthwise conv -- and
  every tokens <-> map conversion is a Reshape to (B, H, W, C) plus a Transpose, which ONNX Runtime's layout passes
  cancel against its NHWC/NCHWc kernels. INT8 gains most: fc1, the depthwise conv and fc2 run as u8 NHWC QLinearConvs
  with no transposes between them;
- GELU is ONNX's own ``Gelu`` op (opset 20), which stays one fused kernel between DequantizeLinear/QuantizeLinear.

Why: on CPUs ONNX Runtime runs this graph faster than the portable one in FP32, and its INT8 recipe can quantize the
depthwise convs here, which did not pay on the portable graph (``python -m benchmarks.bench_int8``; the ratios are in
docs/BENCHMARKS.md, "Design notes"). Not for TensorRT or OpenVINO: they do not read com.microsoft ops (use
``graph="portable"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from converters.model import Block, EfficientSelfAttention, MixFFN, MixTransformer, OverlapPatchEmbed, Stage

MIN_OPSET = 20  # ONNX Gelu


class MultiHeadAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d)) v over heads; exported as com.microsoft.MultiHeadAttention (q, k, v as (B, S, C))."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, c = q.shape
        d = c // heads
        qh = q.reshape(b, n, heads, d).transpose(1, 2)
        kh = k.reshape(b, -1, heads, d).transpose(1, 2)
        vh = v.reshape(b, -1, heads, d).transpose(1, 2)
        attn = torch.softmax((qh @ kh.transpose(-2, -1)) * d ** -0.5, dim=-1)
        return (attn @ vh).transpose(1, 2).reshape(b, n, c)

    @staticmethod
    def symbolic(g, q, k, v, heads: int):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)
        out.setType(q.type())  # (B, S, C) like q: lets the exporter's shape inference go on
        return out


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    lin.weight.data.copy_(weight.detach())
    lin.bias.data.copy_(bias.detach())
    return lin


def _conv1x1(lin: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(lin.in_features, lin.out_features, kernel_size=1)
    conv.weight.data.copy_(lin.weight.detach()[:, :, None, None])
    conv.bias.data.copy_(lin.bias.detach())
    return conv


def to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W): a Reshape then a Transpose (which layout passes can cancel)."""
    return x.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


def to_tokens(x: torch.Tensor, batch, channels: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), with B taken from an upstream tensor and C a constant, never from ``x``'s own
    shape: a Shape node reading a convolution's output keeps ONNX Runtime from cancelling this Transpose against the
    one it puts after its NHWC int8 convolution (more Transposes and DequantizeLinear left in the INT8 model:
    docs/BENCHMARKS.md, "Design notes")."""
    return x.permute(0, 2, 3, 1).reshape(batch, -1, channels)


class OrtAttention(nn.Module):
    def __init__(self, attn: EfficientSelfAttention) -> None:
        super().__init__()
        c = attn.q.in_features
        self.heads, self.sr_ratio = attn.heads, attn.sr_ratio
        self.q, self.proj = attn.q, attn.proj
        self.k = _linear(attn.kv.weight[:c], attn.kv.bias[:c])
        self.v = _linear(attn.kv.weight[c:], attn.kv.bias[c:])
        if attn.sr_ratio > 1:
            self.sr, self.norm = attn.sr, attn.norm

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.sr_ratio > 1:
            kv_in = self.norm(to_tokens(self.sr(to_map(x, h, w)), x.shape[0], self.sr.out_channels))
        else:
            kv_in = x
        return self.proj(MultiHeadAttention.apply(self.q(x), self.k(kv_in), self.v(kv_in), self.heads))


class OrtMixFFN(nn.Module):
    def __init__(self, ffn: MixFFN) -> None:
        super().__init__()
        self.fc1, self.dwconv, self.fc2 = _conv1x1(ffn.fc1), ffn.dwconv, _conv1x1(ffn.fc2)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y = self.fc2(F.gelu(self.dwconv(self.fc1(to_map(x, h, w)))))
        return to_tokens(y, x.shape[0], self.fc2.out_channels)


class OrtBlock(nn.Module):
    def __init__(self, blk: Block) -> None:
        super().__init__()
        self.norm1, self.attn = blk.norm1, OrtAttention(blk.attn)
        self.norm2, self.ffn = blk.norm2, OrtMixFFN(blk.ffn)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class OrtPatchEmbed(nn.Module):
    def __init__(self, pe: OverlapPatchEmbed) -> None:
        super().__init__()
        self.proj, self.norm = pe.proj, pe.norm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        # the output size from the input's (conv arithmetic), not from the conv output's shape (see to_tokens)
        (k, _), (s, _), (p, _) = self.proj.kernel_size, self.proj.stride, self.proj.padding
        h, w = (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1
        return self.norm(to_tokens(self.proj(x), x.shape[0], self.proj.out_channels)), h, w


class OrtStage(nn.Module):
    def __init__(self, stage: Stage) -> None:
        super().__init__()
        self.patch_embed = OrtPatchEmbed(stage.patch_embed)
        self.blocks = nn.ModuleList(OrtBlock(b) for b in stage.blocks)
        self.norm = stage.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x, h, w)
        return to_map(self.norm(x), h, w)


class OrtMixTransformer(nn.Module):
    """``MixTransformer`` with the same weights, in ONNX Runtime's fast form; module names match the original's
    (``stages.N.blocks.M.attn``...), so ONNX node names and the sensitivity analysis' block groups do too."""

    def __init__(self, enc: MixTransformer) -> None:
        super().__init__()
        self.stages = nn.ModuleList(OrtStage(s) for s in enc.stages)

    forward = MixTransformer.forward  # the same loop over ``self.stages``

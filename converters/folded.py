"""The export form of SegFormer: the All-MLP decoder with its fuse layer folded into the per-stage Linears.

The decoder computes ``relu(BN(fuse(concat(up(W_i x_i + b_i)))))``. Bilinear upsampling and 1x1 convolutions are both
linear and commute (and upsampling keeps constants), and BN in eval mode is a per-channel affine map, so this equals
``relu(sum_i up(A_i x_i + c_i))`` with ``A_i = s * F_i W_i`` and ``c_i = s * F_i b_i`` (+ the BN shift once), where F_i
is the block of the fuse weight that sees branch i and s the BN scale. Each A_i runs at its stage's own resolution,
so the 4*width-channel map at 1/4 resolution and the 4*width -> width conv over it (about half of B0's FLOPs at
512x512) disappear. Same function up to float rounding; the export's parity check against the original module
verifies it. Not applicable to mmsegmentation 1.x heads (BN+ReLU on each branch breaks linearity): those export as-is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from converters.model import AllMLPDecoder, SegFormer


class FoldedMLPDecoder(nn.Module):
    def __init__(self, dec: AllMLPDecoder) -> None:
        super().__init__()
        n = len(dec.branches)
        width = dec.fuse.conv.out_channels
        fuse_w = dec.fuse.conv.weight.detach()[:, :, 0, 0].double()
        bn = dec.fuse.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.double() * scale
        self.convs = nn.ModuleList()
        for i, branch in enumerate(dec.branches):
            block = fuse_w[:, (n - 1 - i) * width:(n - i) * width]  # concat order is stage 4 first
            weight = scale[:, None] * (block @ branch.weight.detach()[:, :, 0, 0].double())
            bias = scale * (block @ branch.bias.detach().double()) + (shift if i == 0 else 0.0)
            conv = nn.Conv2d(branch.in_channels, width, kernel_size=1)
            conv.weight.data.copy_(weight[:, :, None, None].float())
            conv.bias.data.copy_(bias.float())
            self.convs.append(conv)
        self.classifier = dec.classifier

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = (feats[0].shape[2], feats[0].shape[3])
        y = self.convs[0](feats[0])
        for feat, conv in zip(feats[1:], self.convs[1:]):
            y = y + F.interpolate(conv(feat), size=size, mode="bilinear", align_corners=False)
        return self.classifier(F.relu(y))


class ExportSegFormer(nn.Module):
    """``pixel_values (B, 3, H, W) -> logits (B, K, H/4, W/4)``, the same function as ``SegFormer`` in a cheaper form.

    graph: "portable" (standard ops: OpenVINO, TensorRT, any ONNX runtime) or "onnxruntime" (the encoder in
    ``converters.ort_graph``'s form: ONNX Runtime's fused attention, Mix-FFN as convolutions)."""

    def __init__(self, model: SegFormer, graph: str = "portable") -> None:
        super().__init__()
        if graph == "onnxruntime":
            from converters.ort_graph import OrtMixTransformer

            self.encoder = OrtMixTransformer(model.encoder)
        elif graph == "portable":
            self.encoder = model.encoder
        else:
            raise ValueError(f"graph: expected 'portable' or 'onnxruntime', got {graph!r}")
        self.decoder = model.decoder if model.config.decoder_branch_norm else FoldedMLPDecoder(model.decoder)
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixel_values))

"""The export form: the decoder's fuse layer folded into the per-stage Linears computes the same logits."""
from __future__ import annotations

import torch

from converters.folded import ExportSegFormer, FoldedMLPDecoder
from converters.model import SegFormer, config_for_variant


def _randomize_bn(model: SegFormer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_folded_decoder_equals_original():
    torch.manual_seed(0)
    model = SegFormer(config_for_variant("b0", 7)).eval()
    _randomize_bn(model, 1)
    folded = ExportSegFormer(model)
    assert isinstance(folded.decoder, FoldedMLPDecoder)
    for shape in [(1, 3, 128, 160), (2, 3, 100, 132)]:
        x = torch.randn(shape)
        with torch.no_grad():
            a, b = model(x), folded(x)
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())


def test_branch_norm_heads_are_not_folded():
    model = SegFormer(config_for_variant("b0", 5, decoder_branch_norm=True)).eval()
    assert ExportSegFormer(model).decoder is model.decoder

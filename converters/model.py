"""SegFormer (Xie et al., NeurIPS 2021) in PyTorch, written for clean ONNX export.

Layout: the encoder keeps tokens as (B, N, C) so LayerNorm, attention and the Mix-FFN linears run on the last
axis with no transposes; it goes to (B, C, H, W) only where a convolution needs it (patch merging, spatial
reduction, the 3x3 depthwise conv) and at each stage's end. The All-MLP decoder works in (B, C, H, W) throughout:
its per-stage "Linear" layers are 1x1 convolutions (the same maths), so no token/map round trips remain there.

Order in this file (timm style): blocks, model, config/variants. Checkpoint key remapping lives in
``converters/checkpoints.py``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------------------------------- blocks
class OverlapPatchEmbed(nn.Module):
    """Overlapped patch merging: conv (K=7,S=4,P=3 first, K=3,S=2,P=1 after), then LayerNorm on tokens."""

    def __init__(self, in_ch: int, dim: int, patch: int, stride: int, eps: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values are spatially reduced by ``sr_ratio`` (a strided conv + LN)."""

    def __init__(self, dim: int, heads: int, sr_ratio: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).permute(0, 2, 1, 3)
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            kv_in = self.norm(kv_in)
        kv = self.kv(kv_in).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class MixFFN(nn.Module):
    """Mix-FFN: Linear, 3x3 depthwise conv, GELU, Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        b, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, sr_ratio: int, eps: float, sr_eps: float,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio, sr_eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = drop_path  # stochastic depth, used only when training

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = torch.rand((x.shape[0], 1, 1), dtype=x.dtype, device=x.device) < keep
        return x * mask / keep

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self._drop(self.attn(self.norm1(x), h, w))
        return x + self._drop(self.ffn(self.norm2(x), h, w))


class Stage(nn.Module):
    def __init__(self, in_ch: int, dim: int, heads: int, mlp_ratio: int, sr_ratio: int,
                 patch: int, stride: int, cfg: "SegFormerConfig", drop_paths: list[float]) -> None:
        """One block per entry of ``drop_paths`` (its stochastic-depth rate): the stage's depth."""
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_ch, dim, patch, stride, cfg.patch_norm_eps)
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, sr_ratio, cfg.layer_norm_eps, cfg.sr_norm_eps, dp) for dp in drop_paths
        )
        self.norm = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x, h, w)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class MixTransformer(nn.Module):
    """MiT encoder: four stages at 1/4, 1/8, 1/16, 1/32 of the input; returns the four (B, C_i, H_i, W_i) maps."""

    def __init__(self, cfg: "SegFormerConfig") -> None:
        super().__init__()
        total = sum(cfg.depths)
        rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, in_ch, start = [], cfg.num_channels, 0
        for i in range(4):
            stages.append(Stage(in_ch, cfg.hidden_sizes[i], cfg.num_heads[i], cfg.mlp_ratios[i],
                                cfg.sr_ratios[i], cfg.patch_sizes[i], cfg.strides[i], cfg,
                                rates[start:start + cfg.depths[i]]))
            in_ch, start = cfg.hidden_sizes[i], start + cfg.depths[i]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class ConvBNReLU(nn.Module):
    """1x1 conv (bias-free) + BatchNorm + ReLU: the decoder's fuse layer, and mmseg 1.x's per-branch layers."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class AllMLPDecoder(nn.Module):
    """Per stage a Linear (1x1 conv) to ``width``, all upsampled to 1/4, concatenated (stage 4 first, as in the
    paper's code), fused by Linear+BN+ReLU, then a Linear to the classes. Output: (B, K, H/4, W/4) logits."""

    def __init__(self, in_dims: list[int], width: int, num_classes: int, branch_norm: bool) -> None:
        super().__init__()
        if branch_norm:
            self.branches = nn.ModuleList(ConvBNReLU(c, width) for c in in_dims)
        else:
            self.branches = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in in_dims)
        self.fuse = ConvBNReLU(width * len(in_dims), width)
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = (feats[0].shape[2], feats[0].shape[3])
        outs = [self.branches[0](feats[0])]  # already at 1/4: resizing to the same size is the identity
        for feat, branch in zip(feats[1:], self.branches[1:]):
            outs.append(F.interpolate(branch(feat), size=size, mode="bilinear", align_corners=False))
        return self.classifier(self.fuse(torch.cat(outs[::-1], dim=1)))


# ---------------------------------------------------------------------------------------------------- model
class SegFormer(nn.Module):
    """MiT encoder + All-MLP decoder. ``forward(pixel_values (B,3,H,W) float32) -> logits (B,K,H/4,W/4)``."""

    def __init__(self, cfg: "SegFormerConfig") -> None:
        super().__init__()
        self.config = cfg
        self.encoder = MixTransformer(cfg)
        self.decoder = AllMLPDecoder(list(cfg.hidden_sizes), cfg.decoder_width, cfg.num_classes,
                                     cfg.decoder_branch_norm)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixel_values))


# ------------------------------------------------------------------------------------------ config, variants
@dataclass(frozen=True, kw_only=True)
class SegFormerConfig:
    """Architecture hyper-parameters. ``variant`` is informative (b0..b5 or "custom")."""

    variant: str
    hidden_sizes: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_classes: int
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratios: tuple[int, int, int, int] = (4, 4, 4, 4)
    patch_sizes: tuple[int, int, int, int] = (7, 3, 3, 3)
    strides: tuple[int, int, int, int] = (4, 2, 2, 2)
    decoder_width: int = 256
    decoder_branch_norm: bool = False  # mmsegmentation 1.x: BN+ReLU after each per-stage Linear
    num_channels: int = 3
    # LayerNorm eps: NVlabs/mmseg use 1e-6 in blocks and stage norms; transformers uses 1e-5 everywhere.
    layer_norm_eps: float = 1e-6
    patch_norm_eps: float = 1e-5
    sr_norm_eps: float = 1e-5
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SegFormerConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SegFormer config keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# (hidden sizes, depths) of the published MiT variants; decoder width 256 for B0/B1, 768 for B2..B5.
MIT_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2), 256),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3), 768),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3), 768),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3), 768),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3), 768),
}


def check_config(cfg: SegFormerConfig) -> None:
    """Refuse configs the network cannot be built or traced from, with the field and the fix (CheckpointError)."""
    from sdk.core.errors import CheckpointError

    def fail(field_name: str, expected: str, got) -> None:
        raise CheckpointError(f"SegFormer config {field_name}: expected {expected}, got {got!r}. Fix the "
                              "checkpoint's config.json (or the arguments that built the config).")

    for name in ("hidden_sizes", "depths", "num_heads", "sr_ratios", "mlp_ratios", "patch_sizes", "strides"):
        value = getattr(cfg, name)
        if not isinstance(value, (tuple, list)) or len(value) != 4:
            fail(name, "4 entries, one per encoder stage", value)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            fail(name, "4 positive integers", value)
    for name in ("num_classes", "decoder_width", "num_channels"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(name, "a positive integer", value)
    for i, (dim, heads) in enumerate(zip(cfg.hidden_sizes, cfg.num_heads)):
        if dim % heads:
            fail("num_heads", f"head counts that divide each stage's width (stage {i}: {dim} channels, "
                              f"{heads} heads)", tuple(cfg.num_heads))
    for name in ("layer_norm_eps", "patch_norm_eps", "sr_norm_eps"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
            fail(name, "a number in (0, 1)", value)
    if not isinstance(cfg.drop_path_rate, (int, float)) or not 0 <= cfg.drop_path_rate < 1:
        fail("drop_path_rate", "a number in [0, 1)", cfg.drop_path_rate)


def variant_name(hidden_sizes: tuple[int, ...], depths: tuple[int, ...]) -> str:
    for name, (hs, ds, _) in MIT_VARIANTS.items():
        if tuple(hidden_sizes) == hs and tuple(depths) == ds:
            return name
    return "custom"


def config_for_variant(variant: str, num_classes: int, **overrides) -> SegFormerConfig:
    """Config of a published variant, e.g. ``config_for_variant("b2", 150)``."""
    if variant not in MIT_VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(MIT_VARIANTS)}, got {variant!r}")
    hs, ds, width = MIT_VARIANTS[variant]
    return SegFormerConfig(variant=variant, hidden_sizes=hs, depths=ds, decoder_width=width,
                           num_classes=num_classes, **overrides)

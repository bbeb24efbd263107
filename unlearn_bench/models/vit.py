"""A small Vision Transformer (Dosovitskiy et al. 2021) sized for 8x8 to 32x32 images."""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    feature_layer = "head"
    feature_source = None
    # the LRA-NPP authors edit only the head weights from a unit to the forget class
    lra_npp_path = "target_out"

    def __init__(self, in_shape, num_classes: int, patch: int, dim: int, depth: int, heads: int,
                 mlp_ratio: int):
        super().__init__()
        c, h, w = in_shape
        if h % patch or w % patch:
            raise ValueError(f"vit_tiny: image {h}x{w} is not divisible by patch {patch}")
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def vit_tiny(in_shape, num_classes: int, patch: int | None = None, dim: int = 192, depth: int = 6,
             heads: int = 3, mlp_ratio: int = 2) -> nn.Module:
    """ViT-Tiny width (192, 3 heads) with 6 blocks; patch 4 for 28/32 px inputs, 2 for 8 px."""
    if patch is None:
        patch = 2 if min(in_shape[1:]) <= 16 else 4
    return ViT(in_shape, num_classes, patch, dim, depth, heads, mlp_ratio)

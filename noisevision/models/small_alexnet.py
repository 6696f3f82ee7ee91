"""SmallAlexNet, the encoder of the paper's small-scale experiments.

The architecture of Wang & Isola's align/uniform code, which the paper trains on 64×64 crops:

    conv3×3 96  → BN → ReLU → maxpool 3/2      64 → 31
    conv3×3 192 → BN → ReLU → maxpool 3/2      31 → 15
    conv3×3 384 → BN → ReLU                    15
    conv3×3 384 → BN → ReLU                    15
    conv3×3 192 → BN → ReLU → maxpool 3/2      15 → 7     (192×7×7 = 9408)
    fc6 9408 → 4096 (no bias) → BN1d → ReLU                (the linear-probe layer)
    fc7 4096 → 4096 (no bias) → BN1d → ReLU
    fc8 4096 → 128 → L2 normalisation

`width` scales every channel count and fc width (1.0 = the paper's network) so tests and quick
CPU runs can use the same code; `input_size` other than 64 changes only the fc6 fan-in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.models.encoder import Encoder
from noisevision.models.norm import GroupBatchNorm1d, GroupBatchNorm2d

CONV_CHANNELS = (96, 192, 384, 384, 192)
POOL_AFTER = (True, True, False, False, True)
FC_DIM = 4096


def _pooled(size: int) -> int:
    """Side length after MaxPool2d(3, 2) without padding."""
    return (size - 3) // 2 + 1


class SmallAlexNet(Encoder):
    """SmallAlexNet; `forward` gives the L2-normalised fc8 embedding [B, out_dim]."""

    feature_layers = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "embedding")
    default_layer = "fc6"

    def __init__(self, width: float = 1.0, out_dim: int = 128, input_size: int = 64):
        super().__init__()
        self.input_size = input_size
        chans = [max(1, round(c * width)) for c in CONV_CHANNELS]
        fc_dim = max(1, round(FC_DIM * width))
        blocks: list[nn.Module] = []
        c_in, side = 3, input_size
        for c_out, pool in zip(chans, POOL_AFTER):
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                GroupBatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
                side = _pooled(side)
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for SmallAlexNet")
        blocks.append(  # fc6
            nn.Sequential(
                nn.Flatten(),
                nn.Linear(c_in * side * side, fc_dim, bias=False),
                GroupBatchNorm1d(fc_dim),
                nn.ReLU(inplace=True),
            )
        )
        blocks.append(  # fc7
            nn.Sequential(
                nn.Linear(fc_dim, fc_dim, bias=False), GroupBatchNorm1d(fc_dim), nn.ReLU(inplace=True)
            )
        )
        blocks.append(nn.Linear(fc_dim, out_dim))  # fc8 (normalised in forward)
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = out_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: weights N(0, 0.02²), biases 0, BN γ=1, β=0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: float [B, 3, S, S] normalised images -> unit-norm embedding [B, out_dim]."""
        for block in self.blocks:
            x = block(x)
        return F.normalize(x, dim=1)

    def _layer_features(self, x: Tensor, layer: str) -> Tensor:
        """Flattened activations [B, F] of `layer` (conv1..conv5 after their pool, fc6, fc7)."""
        stop = self.feature_layers.index(layer)
        for block in self.blocks[: stop + 1]:
            x = block(x)
        return torch.flatten(x, 1)

"""ResNet encoders: torchvision's ResNet-18/50 layout plus small-input and narrow variants.

The trunk is torchvision's (its BasicBlock / Bottleneck modules, parameter names and init), so a
`resnet50` state dict loads into `torchvision.models.resnet50()` with `strict=False` (no `fc`).
Options torchvision lacks, for small images and quick CPU runs:
- `small_stem=True` ("-s" names): a 3×3 stride-1 first conv and no max-pool, the usual adaptation
  to 32–64 px inputs (a 7×7/2 conv + pool would shrink a 32 px image to 8 px before stage 1);
- `deep_stem=True` ("-deep" names): timm's "deep" stem, three 3×3 convs of widths w/2, w/2, w (the
  first stride 2) then the max-pool, under timm's names (conv1.0, conv1.1, …): unlike the 7×7 conv,
  whose width both libraries fix at 64, it narrows with the network, so a narrow ResNet with it is
  a timm model (`timm.create_model("resnet18", stem_type="deep", stem_width=w/2, channels=…)`);
- `width`: every stage's channel count × width (64·width, 128·width, ...).
A projection head maps the pooled features to the training embedding: "mlp" is MoCo v2's
(Linear → ReLU → Linear, as MoCo v2), "linear" a single layer, "none" uses the pooled features.
`forward` returns the L2-normalised embedding; probes use `features(x, "pool")`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.models.encoder import Encoder
from noisevision.models.norm import GroupBatchNorm2d

# torchvision's block class by name, blocks per stage (torchvision is imported when a ResNet is
# built: its import takes seconds, which `--help` and the other encoders need not pay)
DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("BasicBlock", (2, 2, 2, 2)),
    34: ("BasicBlock", (3, 4, 6, 3)),
    50: ("Bottleneck", (3, 4, 6, 3)),
}
HEADS = ("mlp", "linear", "none")


class ResNetEncoder(Encoder):
    """A ResNet trunk (+ projection head); features are globally average-pooled stage outputs."""

    feature_layers = ("layer1", "layer2", "layer3", "pool", "embedding")
    default_layer = "pool"

    def __init__(
        self,
        depth: int = 50,
        small_stem: bool = False,
        width: float = 1.0,
        deep_stem: bool = False,
        head: str = "mlp",
        out_dim: int = 128,
        input_size: int = 224,
    ):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, not {depth}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not '{head}'")
        from torchvision.models import resnet as tv_resnet

        block_name, blocks = DEPTHS[depth]
        block = getattr(tv_resnet, block_name)
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        if deep_stem and (small_stem or widths[0] % 2):
            raise ValueError("deep_stem needs an even first width and no small_stem")
        self.widths = tuple(widths)
        self.input_size = input_size
        self.inplanes = widths[0]
        if small_stem:
            self.conv1: nn.Module = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        elif deep_stem:  # timm's: [B, 3, S, S] -> [B, w, S/2, S/2], the max-pool then halves it again
            half = widths[0] // 2
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False),
                GroupBatchNorm2d(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, half, 3, stride=1, padding=1, bias=False),
                GroupBatchNorm2d(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, widths[0], 3, stride=1, padding=1, bias=False),
            )
        else:
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = GroupBatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_stem else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], blocks[0], stride=1)
        self.layer2 = self._make_layer(block, widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feat_dim = widths[3] * block.expansion
        if head == "mlp":
            self.head: nn.Module = nn.Sequential(
                nn.Linear(self.feat_dim, self.feat_dim),
                nn.ReLU(inplace=True),
                nn.Linear(self.feat_dim, out_dim),
            )
        elif head == "linear":
            self.head = nn.Linear(self.feat_dim, out_dim)
        else:
            self.head = nn.Identity()
        self.out_dim = self.feat_dim if head == "none" else out_dim
        self._init_weights()

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int) -> nn.Sequential:
        """torchvision's ResNet._make_layer (groups 1, no dilation)."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                GroupBatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer=GroupBatchNorm2d)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_layer=GroupBatchNorm2d) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal convs (fan_out), BN γ=1 β=0; default Linear init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stages(self, x: Tensor, upto: int) -> Tensor:
        """Stem then stages layer1..layer<upto>: [B, 3, H, W] -> [B, C, h, w]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4)[:upto]:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """x: float [B, 3, S, S] -> unit-norm embedding [B, out_dim]."""
        return F.normalize(self.head(self.features(x, "pool")), dim=1)

    def _layer_features(self, x: Tensor, layer: str) -> Tensor:
        """Globally average-pooled output of `layer` (layer1..layer3, or layer4 = "pool"): [B, C]."""
        upto = 4 if layer == "pool" else int(layer[-1])
        return torch.flatten(self.avgpool(self._stages(x, upto)), 1)

"""Vision transformers through timm: timm's ViT trunk plus a projection head for the training loss.

The trunk is `timm.create_model(timm_model, pretrained=False, num_classes=0, img_size=input_size,
patch_size=patch_size)` (never downloaded), so its state dict is timm's under the `trunk.` prefix
and `timm_state_dict()` loads strictly into that timm model (`noisevision export --format timm`).

    tokens  [B, 1 + (S/p)², D]   trunk.forward_features: class token + patch tokens, final norm
    cls     [B, D]               the class token (timm's pooled output): the probe layer
    avg     [B, D]               the mean of the patch tokens
    head    [B, out_dim]         "mlp" (Linear → ReLU → Linear, as the ResNets'), "linear" or "none"

A ViT has layer norms, no batch norm: BN groups (`--bn-groups`) do not apply to it.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.models.encoder import Encoder

HEADS = ("mlp", "linear", "none")


class ViTEncoder(Encoder):
    """timm ViT trunk (+ projection head); features are the class token or the mean patch token."""

    feature_layers = ("cls", "avg", "embedding")
    default_layer = "cls"

    def __init__(
        self,
        model: str = "vit_tiny_patch16_224",
        patch_size: int = 16,
        input_size: int = 224,
        depth: int | None = None,
        drop_path: float = 0.0,
        head: str = "mlp",
        out_dim: int = 128,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not '{head}'")
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of the patch size {patch_size}")
        import timm

        self.input_size = input_size
        self.timm_model = model
        self.timm_kwargs: dict[str, Any] = {"img_size": input_size, "patch_size": patch_size}
        if depth is not None:
            self.timm_kwargs["depth"] = depth
        if drop_path:
            self.timm_kwargs["drop_path_rate"] = drop_path
        self.trunk = timm.create_model(model, pretrained=False, num_classes=0, **self.timm_kwargs)
        self.feat_dim = int(self.trunk.num_features)
        d = self.feat_dim
        if head == "mlp":
            self.head: nn.Module = nn.Sequential(
                nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, out_dim)
            )
        elif head == "linear":
            self.head = nn.Linear(d, out_dim)
        else:
            self.head = nn.Identity()
        self.out_dim = d if head == "none" else out_dim

    def timm_state_dict(self) -> dict[str, Tensor]:
        """The trunk's tensors under timm's names: they load strictly into
        `timm.create_model(self.timm_model, num_classes=0, **self.timm_kwargs)`."""
        return dict(self.trunk.state_dict())

    def forward(self, x: Tensor) -> Tensor:
        """x: float [B, 3, S, S] -> unit-norm embedding [B, out_dim]."""
        return F.normalize(self.head(self.features(x, "cls")), dim=1)

    def _layer_features(self, x: Tensor, layer: str) -> Tensor:
        tokens = self.trunk.forward_features(x)  # [B, 1 + N, D] (timm: prefix tokens first)
        if layer == "cls":
            return tokens[:, 0]
        return tokens[:, self.trunk.num_prefix_tokens :].mean(1)

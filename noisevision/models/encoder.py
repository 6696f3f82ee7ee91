"""What every encoder offers: `forward` -> L2-normalised embedding, `features` -> frozen features."""

from __future__ import annotations

from torch import Tensor, nn


class Encoder(nn.Module):
    """Base of the encoders: subclasses name their feature layers and implement `_layer_features`."""

    feature_layers: tuple[str, ...] = ("embedding",)
    default_layer: str = "embedding"

    def features(self, x: Tensor, layer: str | None = None) -> Tensor:
        """Features [B, F] of `layer` (one of feature_layers; "embedding" is forward's output)."""
        layer = layer or self.default_layer
        if layer not in self.feature_layers:
            raise ValueError(f"unknown layer '{layer}': choose from {', '.join(self.feature_layers)}")
        return self(x) if layer == "embedding" else self._layer_features(x, layer)

    def _layer_features(self, x: Tensor, layer: str) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

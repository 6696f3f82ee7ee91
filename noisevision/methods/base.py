"""The method contract: an nn.Module that owns the encoder (and any extra state) and turns two
batches of views into a loss."""

from __future__ import annotations

from torch import Tensor, nn

from noisevision.methods.common import local_groups


class Method(nn.Module):
    """Subclasses implement `forward(v1, v2, step) -> (loss, terms)`.

    `terms` holds detached scalars to log (at least "loss", "align", "uniform"). `encoder` is the
    network whose weights are exported after training. `step` is the global optimisation step,
    for methods that need shared randomness across processes (MoCo's batch shuffle).
    """

    def __init__(self, encoder: nn.Module, bn_groups: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.bn_groups = bn_groups

    @property
    def groups(self) -> int:
        """BN groups of this rank's share of the batch (see methods.common)."""
        return local_groups(self.bn_groups)

    def forward(self, v1: Tensor, v2: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

"""The method contract: an nn.Module that owns the encoder (and any extra state) and turns two
batches of views into a loss."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from noisevision.errors import FieldError, NoisevisionError
from noisevision.methods.common import local_groups, world


class Method(nn.Module):
    """Subclasses implement `forward(v1, v2, step) -> (loss, terms)`; a `supervised` method
    instead takes one view per image and its category: `forward(views, labels, step)`.

    `terms` holds detached scalars to log (at least "loss", "align", "uniform"). `encoder` is the
    network whose weights are exported after training. `step` is the global optimisation step,
    for methods that need shared randomness across processes (MoCo's batch shuffle).
    """

    #: Trains on (one view, category) pairs from data with categories, not on two views.
    supervised: bool = False

    def __init__(self, encoder: nn.Module, bn_groups: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.bn_groups = bn_groups

    @property
    def groups(self) -> int:
        """BN groups of this rank's share of the batch (see methods.common)."""
        return local_groups(self.bn_groups)

    def check_batch(self, batch_size: int) -> None:
        """NoisevisionError when this method cannot train on global batches of `batch_size`
        (called before a run writes anything); subclasses add their own constraints."""
        if (self.bn_groups or 1) > 1 and not any(isinstance(m, _BatchNorm) for m in self.encoder.modules()):
            arch = getattr(self.encoder, "arch", type(self.encoder).__name__)
            raise FieldError(
                "bn_groups",
                f"{{field}} {self.bn_groups}: '{arch}' has no batch norm to split into groups: "
                "leave {field} unset or 1",
            )
        try:
            groups = self.groups
        except ValueError as exc:
            raise NoisevisionError(str(exc)) from exc
        if (batch_size // world()[1]) % groups:
            raise NoisevisionError(f"batch size {batch_size} does not split into {self.bn_groups} BN groups")

    def forward(self, v1: Tensor, v2: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

"""Training presets: the one place where each recipe's hyper-parameters are written down.

`TrainConfig.from_preset(name, **overrides)` (noisevision.train) starts from one of these rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noisevision.errors import unknown_name


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper-small",
            "SPEC §7: SmallAlexNet + align/uniform, 105k images, batch 768, 200 epochs",
            dict(
                arch="smallalexnet", arch_kwargs={}, method="align_uniform", method_kwargs={},
                augment="small", input_size=64, res=None, num_images=105_000, epochs=200,
                batch_size=768, lr=0.36, momentum=0.9, weight_decay=1e-4, schedule="multistep",
                milestones=(155, 170, 185), gamma=0.1, warmup_epochs=0, bn_groups=None,
            ),
        ),
        Preset(
            "paper-large",
            "SPEC §8: ResNet-50 + MoCo v2, 1.3M images at 256 px, batch 256, 200 epochs",
            dict(
                arch="resnet50", arch_kwargs={"head": "mlp", "out_dim": 128}, method="moco_v2",
                method_kwargs={"queue_size": 65536, "momentum": 0.999, "temperature": 0.2},
                augment="mocov2", input_size=224, res=256, num_images=1_300_000, epochs=200,
                batch_size=256, lr=0.015, momentum=0.9, weight_decay=1e-4, schedule="cosine",
                milestones=(), gamma=0.1, warmup_epochs=0,
                # MoCo's recipe ran on 8 GPUs (32 images each): shuffle-BN over 8 groups on any setup.
                bn_groups=8,
            ),
        ),
        # Measured on 2 busy CPU cores: ~95 img/s, so 3 × 3,072 images ≈ 100 s; on Fashion-MNIST
        # (5k/1k subset, pool features) it lifts a linear probe from 71.0 % (same net, random
        # weights) to 73.7 % and 20-NN from 70.6 % to 74.6 % (dead_leaves-mixed). SmallAlexNet is
        # too slow here, and its random fc6 features are already strong on Fashion-MNIST (81.5 %).
        Preset(
            "tiny",
            "quick CPU demo: ResNet-18-s at width 1/4, 32 px crops of 64 px images, ~100 s",
            dict(
                arch="resnet18-s", arch_kwargs={"width": 0.25, "head": "linear", "out_dim": 128},
                method="align_uniform", method_kwargs={}, augment="small-mild", input_size=32,
                res=64, num_images=3072, epochs=3, batch_size=128, lr=0.1, momentum=0.9,
                weight_decay=1e-4, schedule="cosine", milestones=(), gamma=0.1, warmup_epochs=1,
                bn_groups=None,
            ),
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise unknown_name("preset", name, list(PRESETS))
    return PRESETS[name]

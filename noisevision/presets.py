"""Training presets: the one place where each recipe's hyper-parameters are written down.

`BASE` is paper-small's recipe (the paper's small scale), and `TrainConfig`'s defaults
(noisevision.train); the other presets say only what differs from it.
`TrainConfig.from_preset(name, **overrides)` starts from a preset's full values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noisevision.registry import Registry

#: The paper's small scale: SmallAlexNet + align/uniform on 105k images, batch 768, 200 epochs.
BASE: dict[str, Any] = dict(
    arch="smallalexnet",
    arch_kwargs={},
    method="align_uniform",
    method_kwargs={},
    augment="small",
    input_size=64,
    res=None,
    num_images=105_000,
    fresh=False,
    epochs=200,
    batch_size=768,
    optimizer="sgd",
    lr=0.36,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="multistep",
    milestones=(155, 170, 185),
    gamma=0.1,
    warmup_epochs=0,
    bn_groups=None,
    seed=0,
)


@dataclass(frozen=True)
class Timing:
    """How a preset's training speed is measured (scripts/gpu-check): on which generator's images,
    in which precisions, fed which ways besides from memory, over how many steps."""

    data: str
    precisions: tuple[str, ...] = ("bf16",)
    feeds: tuple[str, ...] = ("streamed",)  # noisevision.train_bench.MODES
    steps: int = 8


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    changes: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields that differ from BASE
    protocol: str = "paper"  # the linear-probe protocol its encoders are measured with
    timing: Timing | None = None  # how its training speed is measured; None: it is not

    @property
    def values(self) -> dict[str, Any]:
        """Every recipe field of the preset."""
        return {**BASE, **self.changes}


PRESETS: Registry[Preset] = Registry("preset")


def _add(
    name: str, description: str, protocol: str = "paper", timing: Timing | None = None, **changes: Any
) -> None:
    PRESETS.add(name, Preset(name, description, changes, protocol, timing), description)


_add(
    "paper-small",
    "paper's small scale: SmallAlexNet + align/uniform, 105k images, batch 768, 200 epochs",
    # its images fit in the device's image cache (--cache-images): the epochs after the first read them there
    timing=Timing("dead_leaves-mixed", ("fp32", "bf16"), ("streamed", "cached"), steps=10),
)
_add(
    "paper-large",
    "paper's large scale: ResNet-50 + MoCo v2, 1.3M images at 256 px, batch 256, 200 epochs",
    protocol="moco",  # MoCo's linear protocol, as the paper for its ResNet-50s
    timing=Timing("stylegan-oriented", ("bf16",), ("streamed", "folder")),  # too many images to cache
    arch="resnet50",
    arch_kwargs={"head": "mlp", "out_dim": 128},
    method="moco_v2",
    method_kwargs={"queue_size": 65536, "momentum": 0.999, "temperature": 0.2},
    augment="mocov2",
    input_size=224,
    res=256,
    num_images=1_300_000,
    batch_size=256,
    lr=0.015,
    schedule="cosine",
    milestones=(),
    bn_groups=8,  # MoCo's recipe ran on 8 GPUs (32 images each): shuffle-BN over 8 groups on any setup
)
# SmallAlexNet is too slow for a CPU demo, and its random fc6 features are already strong on
# Fashion-MNIST; a quarter-width ResNet-18 on 64 px views learns within minutes.
_add(
    "tiny",
    "quick CPU demo: ResNet-18 at width 1/4 with timm's deep stem, 64 px views of 64 px images, 3 epochs",
    # timm's deep stem (stride 4 with its max-pool) on 64 px views, not a 3×3 stride-1 stem on 32 px
    # crops: timm builds the trained encoder (`export --format timm`), every stage runs at half the
    # side (under a third of the multiply-adds), and one seed on dead_leaves-mixed probed no worse
    # (fast probe 73.4 against 71.3)
    arch="resnet18-deep",
    arch_kwargs={"width": 0.25, "head": "linear", "out_dim": 128},
    augment="small-mild",
    input_size=64,
    res=64,
    num_images=3072,
    epochs=3,
    batch_size=128,
    lr=0.1,
    schedule="cosine",
    milestones=(),
    warmup_epochs=1,
)

# Formula-driven supervised pre-training on a CPU, in minutes: the FDSL recipe (AdamW 1e-3, wd
# 0.05, warm-up then cosine, smoothing 0.1, Mixup 0.8 / CutMix 1.0, RandAugment m9, erasing 0.25)
# on 64 px views of a generator with categories (--data fractaldb, rcdb, visualatom ...).
_add(
    "fdsl-tiny",
    "formula-driven supervised on a CPU: ResNet-18 at width 1/4 with timm's deep stem, AdamW, 5 epochs",
    arch="resnet18-deep",  # the tiny preset's network, so that both yardsticks train the same one
    arch_kwargs={"width": 0.25, "head": "linear", "out_dim": 128},
    method="supervised",
    augment="fdsl",
    input_size=None,  # the architecture's own: 64 px for resnet18-deep, 32 px for vit-tiny-p4
    res=64,
    num_images=4096,
    epochs=5,
    batch_size=128,
    optimizer="adamw",
    lr=1e-3,
    weight_decay=0.05,
    schedule="cosine",
    milestones=(),
    warmup_epochs=1,
)

# The published ViT-Tiny recipe of the 1k-category FDSL datasets (FractalDB-1k, RCDB-1k,
# VisualAtom-1k: DeiT's training in timm): 1,000 categories × 1,000 instances at 224 px.
_add(
    "fdsl-vit-tiny",
    "formula-driven supervised, published ViT-Tiny 1k recipe: 1M images, 224 px, 300 epochs, AdamW",
    arch="vit-tiny",
    arch_kwargs={},
    method="supervised",
    augment="fdsl",
    input_size=224,
    res=None,
    num_images=1_000_000,
    epochs=300,
    batch_size=256,
    optimizer="adamw",
    lr=1e-3,
    weight_decay=0.05,
    schedule="cosine",
    milestones=(),
    warmup_epochs=5,
)


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)

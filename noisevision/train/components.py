"""What a run is made of: image source, index plan, encoder + method, optimiser, augmentation and
numerics, built from its TrainConfig (shared by `train` and `bench train`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from noisevision import augment
from noisevision.data.stream import IndexPlan, open_source
from noisevision.errors import FieldError, NoisevisionError
from noisevision.methods import METHODS, build_method
from noisevision.methods.common import world
from noisevision.models import build_encoder
from noisevision.precision import grad_scaler, resolve_precision
from noisevision.train.config import OPTIMIZERS, TrainConfig


@dataclass
class Numerics:
    """How the step computes: autocast precision, memory layout, fp16 loss scaling."""

    precision: str = "fp32"
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None


@dataclass
class Components:
    """What a run is made of, built from its config (shared by `train` and `bench train`)."""

    source: Any  # data.stream.ImageSource
    plan: IndexPlan
    method: torch.nn.Module  # methods.Method, on the device
    optimizer: torch.optim.Optimizer
    aug: augment.AugmentConfig
    numerics: Numerics = field(default_factory=Numerics)


def build_components(cfg: TrainConfig, device: torch.device) -> Components:
    """Source, plan, encoder + method, optimiser and augmentation of `cfg`; every user error
    (unknown names, bad sizes) is raised here, before anything is written."""
    _, size = world()
    precision = resolve_precision(cfg.precision, device)
    source = open_source(cfg.data, cfg.res, cfg.seed)
    if cfg.fresh and source.size is not None:
        raise FieldError("fresh", "{field} needs a generator: a folder holds a fixed set of images")
    if source.size is not None and cfg.num_images > source.size:
        raise FieldError(
            "num_images", f"{{field}} {cfg.num_images} but {source.name} holds only {source.size} images"
        )
    plan = IndexPlan(cfg.num_images, cfg.batch_size, cfg.seed, cfg.fresh)
    if cfg.batch_size % size:
        raise NoisevisionError(f"batch size {cfg.batch_size} does not split over {size} processes")
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    encoder = build_encoder(cfg.arch, **cfg.encoder_kwargs())
    labelled = {}
    if METHODS.get(cfg.method).build.supervised:  # the classes come from the data
        if not source.num_classes:
            raise FieldError(
                "data",
                f"method {cfg.method} needs data with categories, and {source.name} has none: give "
                "{field} a generator with classes (noisevision list generators)",
            )
        labelled = {"num_classes": source.num_classes}
    method = build_method(
        cfg.method, encoder, seed=cfg.seed, bn_groups=cfg.bn_groups, **labelled, **cfg.method_kwargs
    )
    method = method.to(device)
    method.check_batch(cfg.batch_size)  # the method's own constraints (BN groups, MoCo's queue)
    channels_last = device.type == "cuda" if cfg.channels_last is None else bool(cfg.channels_last)
    if channels_last:
        method.to(memory_format=torch.channels_last)  # conv weights NHWC: tensor-core friendly
    if cfg.compile:
        if device.type == "cpu":
            match_inductor_to_aten()
        for net in (method.encoder, getattr(method, "key_encoder", None)):
            if net is not None:
                net.compile()  # in place: parameter names (and so checkpoints) stay the same
    optimizer = OPTIMIZERS.get(cfg.optimizer)([p for p in method.parameters() if p.requires_grad], cfg)
    numerics = Numerics(precision, channels_last, grad_scaler(device, precision))
    aug = augment.get_augment(cfg.augment, encoder.input_size)
    return Components(source, plan, method, optimizer, aug, numerics)


def match_inductor_to_aten() -> None:
    """Make torch.compile's CPU code use the vector width ATen runs at.

    Inductor picks its instruction set from the CPU, ATen from ATEN_CPU_CAPABILITY (or the CPU):
    on an AVX-512 CPU told to run ATen at AVX2, as on CPUs emulated for reproducibility checks,
    bf16 channels-last code compiled for AVX-512 around AVX2 ATen kernels gave NaN from the first
    forward pass. A width the user set (torch._inductor.config.cpp.simdlen) is kept.
    """
    import torch._inductor.config as inductor

    if inductor.cpp.simdlen is None:
        inductor.cpp.simdlen = {"AVX512": 512, "AVX2": 256}.get(torch.backends.cpu.get_cpu_capability(), 1)

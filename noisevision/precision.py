"""Numeric precision of training, probes and feature visualisation: fp32, bf16 or fp16 autocast.

    precision = resolve_precision("auto", device)      # bf16 on a GPU that has it, else fp32
    with autocast(device, precision):
        loss = model(x)

The networks run under `torch.autocast` (matrix products and convolutions in the low precision,
reductions and normalisations in fp32, as autocast decides); weights, optimiser state and the
losses stay in fp32 (methods compute their losses inside `full_precision`). fp16 also needs a
gradient scaler (`grad_scaler`), which bf16, with fp32's exponent range, does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from noisevision.errors import FieldError, NoisevisionError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str | None) -> str:
    """The precision's name, lower-case ('auto' for None); NoisevisionError for an unknown one."""
    name = "auto" if name is None else str(name).lower()
    if name not in PRECISIONS:
        raise NoisevisionError(f"unknown precision '{name}': use {', '.join(PRECISIONS)}")
    return name


def resolve_precision(name: str | None, device: torch.device | str) -> str:
    """'auto'/None -> 'bf16' on a CUDA device that supports it, else 'fp32'; checks the others."""
    device = torch.device(device)
    name = check_precision(name)
    if name == "auto":
        return "bf16" if device.type == "cuda" and _cuda_bf16(device) else "fp32"
    if name == "bf16" and device.type == "cuda" and not _cuda_bf16(device):
        raise FieldError("precision", f"{device} has no bfloat16 support: use {{field}} fp16 or fp32")
    if name == "fp16" and device.type not in ("cuda", "cpu"):
        raise NoisevisionError(f"fp16 autocast is not available on {device.type}: use bf16 or fp32")
    return name


def _cuda_bf16(device: torch.device) -> bool:
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast region of `precision` on `device` (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


@contextlib.contextmanager
def full_precision(x: torch.Tensor) -> Iterator[None]:
    """Inside an autocast region, compute in fp32 again (losses: exponentials, logits / T)."""
    with torch.autocast(x.device.type, enabled=False):
        yield


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (disabled, a pass-through, for the other precisions)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")

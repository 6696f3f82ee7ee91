"""Choosing the torch device, with clear errors instead of deep CUDA tracebacks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from noisevision.errors import NoisevisionError
from noisevision.logs import get_logger

log = get_logger(__name__)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """'auto'/None -> cuda if available else cpu; 'cuda' without CUDA -> NoisevisionError."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise NoisevisionError(f"unknown device '{device}': use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NoisevisionError(
                f"device '{device}' asked for, but CUDA is not available here: use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NoisevisionError(
                f"device '{device}' asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif dev.type not in ("cpu", "mps"):
        raise NoisevisionError(f"unsupported device '{device}': use cpu, cuda, cuda:N or auto")
    return dev


def env_count(name: str, default: int, minimum: int = 0) -> int:
    """An integer setting from the environment (torchrun's RANK, WORLD_SIZE, LOCAL_RANK …),
    checked: one line naming the variable for anything that is not an integer ≥ `minimum`."""
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise NoisevisionError(f"{name}={text!r} in the environment is not an integer") from None
    if not minimum <= value < 1 << 31:
        raise NoisevisionError(f"{name}={value} in the environment is out of range ({minimum} or more)")
    return value


def cpu_code_path() -> str:
    """The code path this CPU takes through PyTorch's and MKL's kernels, in words, e.g.
    "x86_64 AuthenticAMD, ATen AVX512, MKL auto, torch 2.14.1".

    Two CPUs with the same path give the same bytes; across paths, generators that are not
    `portable` can differ in last bits (docs: reproducibility). The vendor stands for MKL's own
    choice of path, which it makes by vendor and instruction set and does not report; the
    environment switches that override either library's choice are part of the path.
    """
    import platform

    vendor = ""
    try:
        with open("/proc/cpuinfo") as f:
            vendor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        pass
    mkl = os.environ.get("MKL_CBWR") or os.environ.get("MKL_ENABLE_INSTRUCTIONS") or "auto"
    machine = " ".join(p for p in (platform.machine(), vendor or platform.processor()) if p)
    return f"{machine}, ATen {torch.backends.cpu.get_cpu_capability()}, MKL {mkl}, torch {torch.__version__}"


def rank_device(device: str | torch.device | None = None) -> torch.device:
    """resolve_device, except that under torchrun (LOCAL_RANK set) a plain 'cuda' is this
    process's own GPU, cuda:LOCAL_RANK, so that the ranks of one machine do not share GPU 0."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        dev = resolve_device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
    return dev


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block (the count is restored after).

    For generators whose bytes would otherwise depend on the thread count: torch's multi-threaded
    c2r FFT (irfft2) and convolutions round differently from single-threaded ones, and the
    statistical models' histogram matching or feature visualisation's gradient ascent carries such
    last-bit differences into visible ones. Processes (`generate`, training streams), not threads,
    are what spread rendering over CPU cores.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(device: torch.device, job: str) -> int:
    """Worker processes (or threads) beside the main process when the user gives none.

    "generate": on CPU one rendering process per core; beside a GPU, encoder threads on half the
    cores. "train": the processes that render or decode training images while the step runs: on
    CPU one (the step takes the other cores); on a GPU none for generators, which render on it,
    and four for image folders, whose files are decoded on the CPU. "train-folder" is that last
    case.
    """
    cuda = device.type == "cuda"
    if job == "generate":
        return max(2, available_cores() // 2) if cuda else available_cores()
    if job == "train":
        return 0 if cuda else 1
    if job == "train-folder":
        return 4 if cuda else 1
    raise ValueError(f"unknown job '{job}'")


def triton_kernels_run(
    device: torch.device, what: str, self_check: Callable[[torch.device], bool], known: dict[str, bool]
) -> bool:
    """Whether fused Triton kernels (`what`, for the warning) run on `device`: CUDA, or Triton's
    interpreter on a CPU (TRITON_INTERPRET=1, which the tests use), unless NOISEVISION_TRITON=0.

    The first time per device type (`known` keeps the answers), `self_check(device)` must pass: a
    Triton that cannot compile the kernels, or computes otherwise, is not used (one warning).
    """
    if os.environ.get("NOISEVISION_TRITON", "1") == "0":
        return False
    kind = device.type
    if kind not in known:
        ok = kind == "cuda" or (kind == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")
        known[kind] = False  # (self-checks compare with the tensor code, which must not recurse)
        if ok:
            try:
                ok = self_check(device)
            except Exception as exc:  # no Triton, or one that cannot compile the kernels
                log.warning(f"fused {what} kernels unavailable ({exc}); using tensor code")
                ok = False
        known[kind] = ok
    return known[kind]

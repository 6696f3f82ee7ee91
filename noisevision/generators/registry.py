"""The generator registry: every image source is a name (the paper's names plus our own).

`get(name, **params)` returns a `Generator`; calling it renders any set of indices:

    g = generators.get("dead_leaves-mixed")
    imgs = g(range(16), res=128, seed=0, device="cpu")   # uint8 [16, 3, 128, 128]

Image i is a pure function of (name, params, seed, i): the base class derives one random key per
index (noisevision.rng) and the family code only ever draws from those keys.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from noisevision.device import one_cpu_thread, resolve_device
from noisevision.errors import FieldError, NoisevisionError
from noisevision.registry import Registry
from noisevision.rng import Rng, as_indices


class Generator:
    """Base class: subclasses implement `render(rng, res) -> uint8 [B, 3, res, res]`.

    `render` receives one random key per image (an `Rng` on the target device) and must draw every
    random number from it, batched; `__call__` validates input and chunks large requests (chunking
    never changes the images, since each image only depends on its own key).
    """

    #: Largest batch rendered in one go (memory bound); subclasses may lower it.
    max_batch: int = 256
    #: Render on one CPU thread whatever torch's setting (device.one_cpu_thread): for families
    #: whose bytes would otherwise depend on the thread count.
    single_cpu_thread: bool = False
    #: On a GPU, render up to this many pixels in one go where that is more than `max_batch`
    #: images: a GPU spends a batch's launches once, so launch-bound families gain from wide batches
    #: (below 64 px, as many images as at 64 px: per-image state does not shrink with them).
    gpu_pixels: int = 0
    #: The same bytes on every x86-64 CPU, whichever code paths MKL and ATen take there (vector
    #: width, instruction set): the family uses only elementwise arithmetic that rounds alike on
    #: all of them. Other families are the same only on CPUs that take the same code path.
    portable: bool = False
    #: Categories (formula-driven supervised learning): 0 for a family without them. With C
    #: categories, image i is instance i // C of category i mod C, so that any run of C
    #: consecutive indices holds one image of each, and the label is a function of the index.
    num_classes: int = 0
    #: The parameters worth searching and their ranges (noisevision.generators.params), declared by
    #: the family beside its defaults; `noisevision search` samples them.
    search_space: tuple[Any, ...] = ()

    def __init__(self, spec: GeneratorSpec, **params: Any):
        self.spec = spec
        self.params = params

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(
        self,
        indices: Iterable[int] | Tensor,
        res: int | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> Tensor:
        res = self.check_res(self.spec.default_res if res is None else res)
        dev = resolve_device(device)
        idx = as_indices(indices, dev)
        if idx.numel() and int(idx.min()) < 0:
            raise NoisevisionError("image indices must be non-negative")
        if idx.numel() == 0:
            return torch.empty(0, 3, res, res, dtype=torch.uint8, device=dev)
        out = []
        exact = self.single_cpu_thread and dev.type == "cpu"
        with torch.no_grad(), one_cpu_thread() if exact else exact_gpu_math(dev):
            for chunk in idx.split(self.batch_limit(res, dev)):
                out.append(self.render_indices(chunk, int(seed), res))
        return torch.cat(out) if len(out) > 1 else out[0]

    def labels(self, indices: Iterable[int] | Tensor) -> Tensor:
        """The category of each image of `indices` (int64, on their device): index mod num_classes."""
        if not self.num_classes:
            raise NoisevisionError(f"'{self.name}' has no categories: its images carry no labels")
        idx = as_indices(indices, indices.device if isinstance(indices, Tensor) else "cpu")
        return idx % self.num_classes

    def render(self, rng: Rng, res: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, res: int | None = None, device: str | torch.device = "cpu") -> None:
        """Build now what calls at this resolution share and would otherwise build lazily (e.g. a
        texture bank), so that timing the calls after it measures the steady state."""

    def prepare_classes(
        self, indices: Iterable[int], seed: int = 0, device: str | torch.device = "cpu"
    ) -> None:
        """Find now, once, the categories of images `indices` where finding one is a search (e.g.
        FractalDB's codes), so that rendering them after it measures the steady state."""

    def batch_invariant(self, device: torch.device) -> bool:
        """Whether an image's bytes are the same in any batch on `device` (on CPUs always; on a
        GPU unless the family's kernels round by batch shape, see `device_block`)."""
        return True

    def batch_limit(self, res: int, device: torch.device) -> int:
        """How many images one `render` call takes at `res` on `device` (see `gpu_pixels`)."""
        if device.type == "cpu" or not self.gpu_pixels:
            return self.max_batch
        return max(self.max_batch, self.gpu_pixels // max(res, 64) ** 2)

    def device_block(self, res: int) -> int:
        """How many consecutive indices `generate` renders together on a GPU (aligned blocks)."""
        return self.batch_limit(res, torch.device("cuda"))

    def setup_note(self, res: int, device: str | torch.device = "cpu") -> str | None:
        """What the first call at this resolution will build before its images, in words (for a
        progress display); None when there is nothing slow to build."""
        return None

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        """Render images `indices` (int64 [B] on the device): their keys, then `render`.

        Generators whose images depend on the index itself, not only on its random key (a network
        shared by a block of indices, a target unit chosen by index, a category), override this.
        """
        return self.render(Rng.for_indices(self.key, seed, indices), res)

    @property
    def key(self) -> str:
        """What the random keys are derived from: the generator's name (its base name when its
        parameters are written in it)."""
        return self.spec.key or self.spec.name

    def check_res(self, res: int) -> int:
        """Validate a resolution for this generator; NoisevisionError if it cannot make it."""
        spec = self.spec
        if not isinstance(res, int) or res < spec.min_res:
            raise FieldError(
                "res", f"resolution {res} too small for '{spec.name}': use {{field}} {spec.min_res} or more"
            )
        if spec.resolutions and res not in spec.resolutions:
            allowed = ", ".join(map(str, spec.resolutions))
            raise NoisevisionError(f"'{spec.name}' renders only resolutions {allowed}, not {res}")
        if res > 4096:
            raise NoisevisionError(f"resolution {res} too large: at most 4096")
        return res

    def describe(self) -> dict[str, Any]:
        """Name and parameters (and categories, if any), as written to a dataset manifest."""
        described = {"name": self.name, "family": self.spec.family, "params": dict(self.params)}
        return {**described, "num_classes": self.num_classes} if self.num_classes else described

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.name!r}{args})"


@contextlib.contextmanager
def exact_gpu_math(device: torch.device) -> Iterator[None]:
    """On CUDA: full fp32 convolutions and matrix products (no TF32), deterministic cuDNN kernels
    chosen without timing them, and PyTorch's deterministic algorithms (a floating-point cumsum,
    scatter_add or gather backward otherwise adds in a different order from run to run), so that
    an image's bytes never depend on the run or on what ran before it (e.g. training's
    cudnn.benchmark). Everything is restored afterwards."""
    if device.type != "cuda":
        yield
        return
    import torch.utils.deterministic as det

    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        det.fill_uninitialized_memory,
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    # warn_only: a 1×1 adaptive pooling's backward (feature visualisation) has no deterministic
    # kernel but adds one value per element, which is deterministic in effect
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = False  # deterministic mode would fill every torch.empty
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        det.fill_uninitialized_memory = saved[3]


@contextlib.contextmanager
def order_free(enabled: bool = True) -> Iterator[None]:
    """Lift deterministic-algorithms mode around an operation whose result cannot depend on the
    order of its additions (e.g. counting by adding ones), so that it keeps its fast kernel."""
    if not enabled or not torch.are_deterministic_algorithms_enabled():
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)


@dataclass(frozen=True)
class GeneratorSpec:
    """One registry row: how `noisevision list` shows a generator and how to build it."""

    name: str
    family: str
    label: str  # the paper's label, "" for our own
    default_res: int
    description: str
    build: Callable[..., Generator] = field(repr=False)
    defaults: dict[str, Any] = field(default_factory=dict)  # fixed parameters of this name
    min_res: int = 16
    resolutions: tuple[int, ...] | None = None  # None: any resolution >= min_res
    takes_precision: bool = False  # a `precision` parameter: the autocast of the network it runs
    key: str = ""  # what random keys derive from when not the name ("": the name)


GENERATORS: Registry[GeneratorSpec] = Registry("generator")
# Parametric names (e.g. "mix6:a+b", "feature_vis-<file>"): resolvers tried in order on a miss;
# they take the user's parameters too, so they live beside the table rather than in it.
_RESOLVERS: list[Callable[[str, dict[str, Any]], Generator | None]] = []


def register(
    name: str,
    *,
    family: str,
    label: str = "",
    default_res: int = 128,
    description: str,
    min_res: int = 16,
    resolutions: tuple[int, ...] | None = None,
    takes_precision: bool = False,
    **defaults: Any,
) -> Callable[[type[Generator]], type[Generator]]:
    """Class decorator: register `cls(spec, **defaults, **user_params)` under `name`.

    Can be stacked to register several names (variants) of one class with different defaults.
    """

    def deco(cls: type[Generator]) -> type[Generator]:
        spec = GeneratorSpec(
            name,
            family,
            label,
            default_res,
            description,
            cls,
            dict(defaults),
            min_res,
            resolutions,
            takes_precision,
        )
        GENERATORS.add(name, spec, description, **defaults)
        return cls

    return deco


def register_resolver(fn: Callable[[str, dict[str, Any]], Generator | None], usage: str = "") -> None:
    """Add a resolver for parametric names; it returns None for names it does not handle.

    `usage` (e.g. "mix<K>:<name>+<name>…: convex mixes") is shown by `noisevision list`.
    """
    _RESOLVERS.append(fn)
    if usage:
        GENERATORS.add_usage(usage)


def get(name: str, **params: Any) -> Generator:
    """Build the generator registered as `name`, user `params` overriding its defaults."""
    if name not in GENERATORS:
        for resolve in _RESOLVERS:
            gen = resolve(name, params)
            if gen is not None:
                return gen
    spec = GENERATORS.get(name)  # an unknown name: "did you mean …"
    return _build(spec, {**spec.defaults, **params})


def build_named(base: str, name: str, values: dict[str, Any], params: dict[str, Any]) -> Generator:
    """For resolvers: the registered generator `base` under `name`, which writes `values` in it
    (`rcdb:classes=100`): those as its defaults, `params` over them, its random keys from `base`."""
    spec = GENERATORS.get(base)
    named = replace(spec, name=name, key=spec.key or spec.name, defaults={**spec.defaults, **values})
    return _build(named, {**named.defaults, **params})


def _build(spec: GeneratorSpec, kwargs: dict[str, Any]) -> Generator:
    try:
        return spec.build(spec, **kwargs)
    except TypeError as exc:  # an unknown keyword from the user
        raise NoisevisionError(f"bad parameters for generator '{spec.name}': {exc}") from exc


def specs() -> list[GeneratorSpec]:
    """All registered generators, in registration order."""
    return [e.value for e in GENERATORS.entries()]


def names() -> list[str]:
    return GENERATORS.names()


def spec(name: str) -> GeneratorSpec:
    return GENERATORS.get(name)

"""Generators made of other generators: convex mixes of images, and datasets drawn from several.

Two kinds of name, both resolved by the registry, so every place that takes a generator takes them:

- `mix6:stylegan-oriented+dead_leaves-mixed` (a convex mix, as the successor paper Shaders-21k's
  MixUp of K images) renders image i as Σ_j w_j·x_j over K = 6 slots. Slot j takes a generator
  from the list (uniformly, from image i's key) and renders that generator's image i·K + j with
  the same seed, so every component is an ordinary, reproducible image of its generator (and
  `mix1:g` is exactly `g`). Weights are Dirichlet(1) (default) or uniform draws normalised.
- `A+B` or `A:0.7+B:0.3` (a dataset drawn from several generators): image i is image i of one of
  them, picked from (seed, i) with probability proportional to its weight (1 where none is given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noisevision.errors import NoisevisionError, UnknownNameError
from noisevision.generators import registry
from noisevision.generators.registry import Generator, GeneratorSpec
from noisevision.rng import Rng

DEFAULT_K = 6  # the successor paper's released setting
WEIGHTINGS = ("dirichlet", "uniform")
_NAME = re.compile(r"mix(\d*):(.*)")


def mixing_weights(rng: Rng, k: int, weighting: str = "dirichlet") -> Tensor:
    """Convex weights [B, K]: Dirichlet(1, …, 1) (normalised Exp(1) draws) or normalised U(0, 1)."""
    u = rng.uniform(k)
    draws = -torch.log1p(-u) if weighting == "dirichlet" else u
    draws = draws.clamp_min(1e-30)  # u = 0 has probability 2^-24: never divide 0 by 0
    return draws / draws.sum(dim=1, keepdim=True)


class Mix(Generator):
    """Image i = Σ_j w_ij · (image i·K + j of generator g_ij), g_ij drawn from `components`."""

    def __init__(self, spec: GeneratorSpec, components: list[Generator], k: int, weighting: str):
        super().__init__(spec, weighting=weighting)
        self.components = components
        self.k = k
        self.weighting = weighting
        self.max_batch = min(64, *(c.max_batch for c in components))  # K uint8 images per image
        self.portable = all(c.portable for c in components)

    def batch_invariant(self, device: torch.device) -> bool:
        return all(c.batch_invariant(device) for c in self.components)

    def slots(self, indices: Tensor, seed: int) -> tuple[Tensor, Tensor]:
        """Each image's slots: the component drawn for each (long [B, K]) and its weight [B, K]."""
        rng = Rng.for_indices(self.key, seed, indices)
        choice = rng.randint(0, len(self.components), self.k)
        return choice, mixing_weights(rng, self.k, self.weighting)

    def program_text(self, index: int, seed: int = 0) -> str:
        """Image `index` in words: each slot's weight, generator and image, with that image's own
        program where its generator draws one (random image programs)."""
        if index < 0:
            raise NoisevisionError("image indices must be non-negative")
        choice, weights = self.slots(torch.tensor([int(index)]), seed)
        lines = [f"{self.name} image {index} (seed {seed}): a mix of {self.k} images"]
        for j, (c, w) in enumerate(zip(choice[0].tolist(), weights[0].tolist(), strict=True)):
            gen, sub = self.components[c], int(index) * self.k + j
            lines.append(f"  {w:.3f} × {gen.name} image {sub}")
            if hasattr(gen, "program_text"):
                lines += ["    " + line for line in gen.program_text(sub, seed).splitlines()[1:]]
        return "\n".join(lines)

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        b, k, dev = len(indices), self.k, indices.device
        choice, weights = self.slots(indices, seed)  # [B, K] each
        slots = torch.empty(b, k, 3, res, res, dtype=torch.uint8, device=dev)
        sub_index = indices[:, None] * k + torch.arange(k, device=dev)  # [B, K]
        for c, gen in enumerate(self.components):  # one batched call per component
            mask = choice == c
            if mask.any():
                slots[mask] = gen(sub_index[mask], res=res, seed=seed, device=dev)
        mixed = torch.zeros(b, 3, res, res, device=dev)
        for j in range(k):  # a fixed order of additions: the same bytes on any batch
            mixed += weights[:, j, None, None, None] * slots[:, j]
        return mixed.round_().clamp_(0, 255).to(torch.uint8)


def parse_mix_name(name: str) -> tuple[int, list[str]] | None:
    """'mix6:a+b' -> (6, ['a', 'b']); 'mix:a' -> (6, ['a']); None if `name` is not a mix name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    k = int(match.group(1)) if match.group(1) else DEFAULT_K
    parts = match.group(2).split("+")
    if k < 1:
        raise NoisevisionError(f"'{name}': K must be at least 1 (e.g. mix6:{match.group(2)})")
    if not all(parts):
        raise NoisevisionError(f"'{name}': list generators after the colon, e.g. mix6:stylegan-oriented")
    return k, parts


def resolve_mix(name: str, params: dict[str, Any]) -> Generator | None:
    """Registry resolver for mix names; params: weighting ('dirichlet' or 'uniform')."""
    parsed = parse_mix_name(name)
    if parsed is None:
        return None
    k, parts = parsed
    unknown = set(params) - {"weighting"}
    if unknown:
        raise NoisevisionError(f"bad parameters for generator '{name}': {', '.join(sorted(unknown))}")
    weighting = params.get("weighting", "dirichlet")
    if weighting not in WEIGHTINGS:
        raise NoisevisionError(f"'{name}': weighting must be dirichlet or uniform, not '{weighting}'")
    try:
        components = [registry.get(p) for p in parts]
    except UnknownNameError as exc:
        raise UnknownNameError(f"{exc} (in '{name}')") from exc
    spec = _combined_spec(
        name,
        components,
        f"Convex mix of {k} images of {', '.join(parts)}",
        lambda spec, **kw: resolve_mix(name, kw),
        weighting=weighting,
    )
    return Mix(spec, components, k, weighting)


def _combined_spec(
    name: str, parts: list[Generator], description: str, build: Callable[..., Generator], **defaults: Any
) -> GeneratorSpec:
    """The registry row of a generator made of `parts`: the resolutions they all render, the
    first part's default resolution where all of them render it."""
    specs = [p.spec for p in parts]
    allowed = [set(s.resolutions) for s in specs if s.resolutions]
    resolutions = tuple(sorted(set.intersection(*allowed))) if allowed else None
    if resolutions == ():
        raise NoisevisionError(f"'{name}': its generators share no resolution")
    default_res = specs[0].default_res
    if resolutions is not None and default_res not in resolutions:
        default_res = resolutions[0]
    return GeneratorSpec(
        name=name,
        family="mixing",
        label="",
        default_res=default_res,
        description=description,
        build=build,
        defaults=defaults,
        min_res=max(s.min_res for s in specs),
        resolutions=resolutions,
    )


class Pick(Generator):
    """Image i = image i of one of `parts`, part k drawn from (seed, i) with probability ∝ weight."""

    def __init__(self, spec: GeneratorSpec, parts: list[Generator], weights: list[float]):
        total = math.fsum(weights)
        super().__init__(spec)  # the name holds the weights: no parameters of its own
        self.parts = parts
        self.weights = [w / total for w in weights]
        cdf = torch.tensor(weights, dtype=torch.float64).cumsum(0) / total
        self.cdf = cdf.float()
        self.cdf[-1] = 1.0  # rounding must never leave a draw past the last part
        self.max_batch = min(p.max_batch for p in parts)
        self.gpu_pixels = min(p.gpu_pixels for p in parts)
        self.portable = all(p.portable for p in parts)

    def batch_invariant(self, device: torch.device) -> bool:
        return all(p.batch_invariant(device) for p in self.parts)

    def choice(self, indices: Tensor, seed: int) -> Tensor:
        """Which part renders each index: int64 [B], a pure function of (seed, index)."""
        u = Rng.for_indices("mix", seed, indices).uniform(1)[:, 0]
        return torch.searchsorted(self.cdf.to(u.device), u, right=True).clamp_(max=len(self.parts) - 1)

    def program_text(self, index: int, seed: int = 0) -> str:
        """Image `index` in words: the part it comes from, and that part's own description."""
        if index < 0:
            raise NoisevisionError("image indices must be non-negative")
        part = self.parts[int(self.choice(torch.tensor([int(index)]), seed)[0])]
        lines = [f"{self.name} image {index} (seed {seed}): image {index} of {part.name}"]
        if hasattr(part, "program_text"):
            lines += ["  " + line for line in part.program_text(index, seed).splitlines()[1:]]
        return "\n".join(lines)

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        which = self.choice(indices, seed)
        out = torch.empty(len(indices), 3, res, res, dtype=torch.uint8, device=indices.device)
        for k, part in enumerate(self.parts):  # one batched call per part
            sel = torch.nonzero(which == k).squeeze(1)
            if sel.numel():
                out[sel] = part(indices[sel], res=res, seed=seed, device=indices.device)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": self.weights, "parts": [p.describe() for p in self.parts]}


def parse_pick_name(name: str) -> list[tuple[str, float]] | None:
    """'A+B' -> [(A, 1), (B, 1)]; 'A:0.7+B:0.3' -> [(A, 0.7), (B, 0.3)]; None if not such a name.

    A part's weight is what follows its last colon when that reads as a number, so parametric
    names keep their own colons (`program-shader:depth=5:0.7`).
    """
    parts = []
    for item in name.split("+"):
        head, colon, tail = item.rpartition(":")
        try:
            part, weight = (head, float(tail)) if colon else (item, 1.0)
        except ValueError:
            part, weight = item, 1.0
        parts.append((part, weight))
    if len(parts) == 1 and parts[0][0] == name:
        return None  # no '+' and no weight: an ordinary (unknown) name
    bad = [f"{p}:{w:g}" for p, w in parts if not (math.isfinite(w) and w > 0)]
    if not all(p for p, _ in parts) or bad:
        raise NoisevisionError(
            f"bad mix '{name}': write A+B or A:0.7+B:0.3 with finite positive weights"
            + (f" (not {', '.join(bad)})" if bad else "")
        )
    if not math.isfinite(sum(w for _, w in parts)):
        raise NoisevisionError(f"bad mix '{name}': its weights add up to more than a float holds")
    return parts


def resolve_pick(name: str, params: dict[str, Any]) -> Generator | None:
    """Registry resolver for `A+B` / `A:0.7+B:0.3` (no parameters of its own)."""
    parsed = parse_pick_name(name)
    if parsed is None:
        return None
    if params:
        raise NoisevisionError(f"bad parameters for generator '{name}': {', '.join(sorted(params))}")
    try:
        parts = [registry.get(p) for p, _ in parsed]
    except UnknownNameError as exc:
        raise UnknownNameError(f"{exc} (in '{name}')") from exc
    spec = _combined_spec(
        name,
        parts,
        f"Images of {', '.join(p for p, _ in parsed)}, one generator each",
        lambda spec, **kw: resolve_pick(name, kw),
    )
    return Pick(spec, parts, [w for _, w in parsed])


registry.register_resolver(
    resolve_mix,
    "mix<K>:<name>+<name>+… — image i is a random convex mix (Dirichlet(1)) of K images of the "
    "listed generators (K = 6 if omitted); e.g. mix6:stylegan-oriented+dead_leaves-mixed",
)
registry.register_resolver(
    resolve_pick,
    "<name>+<name>… or <name>:0.7+<name>:0.3 — image i is image i of one of the listed generators, "
    "drawn with probability proportional to its weight; e.g. dead_leaves-mixed+stylegan-oriented",
)

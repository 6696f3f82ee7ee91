"""Mixing (SPEC §6, from the successor paper Shaders21k): convex combinations of generated images.

`mix6:stylegan-oriented+dead_leaves-mixed` renders image i as Σ_j w_j·x_j over K = 6 slots. Slot j
takes a generator from the list (uniformly, from image i's key) and renders that generator's image
i·K + j with the same seed, so every component is an ordinary, reproducible image of its generator
(and `mix1:g` is exactly `g`). Weights are Dirichlet(1) (default) or uniform draws normalised.
"""

from __future__ import annotations

import re
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
    specs = [c.spec for c in components]
    allowed = [set(s.resolutions) for s in specs if s.resolutions]
    resolutions = tuple(sorted(set.intersection(*allowed))) if allowed else None
    if resolutions == ():
        raise NoisevisionError(f"'{name}': its generators share no resolution")
    default_res = specs[0].default_res
    if resolutions is not None and default_res not in resolutions:
        default_res = resolutions[0]
    spec = GeneratorSpec(
        name=name,
        family="mixing",
        label="",
        default_res=default_res,
        description=f"Convex mix of {k} images of {', '.join(parts)}",
        build=lambda spec, **kw: resolve_mix(name, kw),
        defaults={"weighting": weighting},
        min_res=max(s.min_res for s in specs),
        resolutions=resolutions,
    )
    return Mix(spec, components, k, weighting)


registry.register_resolver(
    resolve_mix,
    "mix<K>:<name>+<name>+… — image i is a random convex mix (Dirichlet(1)) of K images of the "
    "listed generators (K = 6 if omitted); e.g. mix6:stylegan-oriented+dead_leaves-mixed",
)

"""The program generators (`program-cppn`, `program-shader`, `program-mixed`) and the resolver of
`program-<grammar>:depth=N,classes=C` names: blank images re-drawn, categories, programs in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noisevision.device import one_cpu_thread
from noisevision.errors import NoisevisionError
from noisevision.generators import registry
from noisevision.generators.params import Param
from noisevision.generators.programs.categories import SPREAD, instance_program
from noisevision.generators.programs.describe import describe_program
from noisevision.generators.programs.grammar import GRAMMARS, MAX_DEPTH, sample_program
from noisevision.generators.programs.render import is_blank, render_programs
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng

RETRIES = 4
CLASS_TEST_RES = 32  # a category's program is tested for blankness at this size, on the CPU


class ProceduralPrograms(Generator):
    """Image i: the program drawn from its key, re-drawn from child keys while blank.

    With `classes=C` (categories): image i is an instance of category i mod C, whose program is
    drawn from the key (seed, category) (re-drawn while blank); the image's own key re-draws the
    program's continuous numbers around the category's (`categories`, width `spread`).
    """

    single_cpu_thread = True
    search_space = (
        Param("depth", "int", 1, MAX_DEPTH, help="depth of the program tree: its complexity"),
        Param("cppn_share", "float", 0.0, 1.0, help="share of CPPN programs", only=("program-mixed",)),
    )
    max_batch = 128
    gpu_pixels = 1024 * 128 * 128  # the fused kernels launch per slot, not per image

    def __init__(
        self,
        spec: GeneratorSpec,
        grammar: str = "mixed",
        depth: int = 3,
        cppn_share: float = 0.2,
        classes: int = 0,
        spread: float | None = None,
    ):
        categories = {"classes": classes, "spread": SPREAD if spread is None else spread} if classes else {}
        super().__init__(spec, grammar=grammar, depth=depth, cppn_share=cppn_share, **categories)
        if grammar not in GRAMMARS:
            raise NoisevisionError(f"unknown grammar '{grammar}' for {spec.name}: use {', '.join(GRAMMARS)}")
        if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise NoisevisionError(f"{spec.name}: depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
        if not 0 <= cppn_share <= 1:
            raise NoisevisionError(f"{spec.name}: cppn_share must be in 0..1, got {cppn_share!r}")
        name = spec.name
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
            raise NoisevisionError(f"{name}: classes must be an integer >= 0 (0: none), got {classes!r}")
        if spread is not None and not classes:
            raise NoisevisionError(f"{name}: spread needs classes (instances around a category)")
        if spread is not None and not 0 <= spread <= 1:
            raise NoisevisionError(f"{name}: spread must be in 0..1, got {spread!r}")
        self.grammar, self.depth, self.cppn_share = grammar, depth, float(cppn_share)
        self.num_classes, self.spread = classes, SPREAD if spread is None else float(spread)
        self._class_tries: dict[tuple[int, int], int] = {}  # (seed, category) -> blank re-draws

    @property
    def key(self) -> str:
        """Keys come from the grammar's name, so that `program-shader:depth=3` is `program-shader`."""
        return f"program-{self.grammar}"

    def sample_params(self, rng: Rng) -> dict[str, Tensor]:
        return sample_program(rng, self.grammar, self.depth, self.cppn_share)

    def render(self, rng: Rng, res: int) -> Tensor:
        rgb, _ = self._render_with_tries(rng, res)
        return (rgb * 255).round_().clamp_(0, 255).to(torch.uint8).contiguous()

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        if not self.num_classes:
            return super().render_indices(indices, seed, res)
        rng = Rng.for_indices(self.key, seed, indices)
        rgb, _ = self._render_with_tries(rng, res, self.class_keys(seed, indices % self.num_classes))
        return (rgb * 255).round_().clamp_(0, 255).to(torch.uint8).contiguous()

    def class_keys(self, seed: int, categories: Tensor) -> Tensor:
        """The key of each category's program [B]: drawn from (seed, category), re-drawn (child
        "retry") while the program renders blank at CLASS_TEST_RES px on one CPU thread, so the
        choice is the same on every device."""
        base = Rng.for_indices(self.key + "/class", seed, categories).keys
        todo = [c for c in categories.unique().tolist() if (seed, c) not in self._class_tries]
        if todo:
            keys = Rng.for_indices(self.key + "/class", seed, torch.tensor(todo)).keys
            tries = torch.zeros(len(todo), dtype=torch.int64)
            with torch.no_grad(), one_cpu_thread():
                for _ in range(RETRIES):
                    rgb = render_programs(self.sample_params(Rng(keys)), CLASS_TEST_RES, self.depth)
                    blank = is_blank(rgb)
                    if not blank.any():
                        break
                    keys = torch.where(blank, Rng(keys).child("retry").keys, keys)
                    tries += blank.long()
            self._class_tries.update({(seed, c): int(t) for c, t in zip(todo, tries.tolist(), strict=True)})
        tries = torch.tensor([self._class_tries[(seed, c)] for c in categories.tolist()], device=base.device)
        for attempt in range(1, int(tries.max()) + 1 if len(tries) else 1):
            base = torch.where(tries >= attempt, Rng(base).child("retry").keys, base)
        return base

    def _params(self, keys: Tensor, class_keys: Tensor | None) -> dict[str, Tensor]:
        """The programs of images with these keys (and, with categories, their categories' keys)."""
        own = self.sample_params(Rng(keys))
        if class_keys is None:
            return own
        return instance_program(self.sample_params(Rng(class_keys)), own, self.spread)

    def _render_with_tries(
        self, rng: Rng, res: int, class_keys: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """RGB [B, 3, res, res] in [0, 1] and which try [B] each image's program is (with
        categories, a blank instance re-draws its own numbers, never its category's program)."""
        rgb = render_programs(self._params(rng.keys, class_keys), res, self.depth)
        tries = torch.zeros(rng.batch, dtype=torch.int64, device=rng.device)
        keys = rng.keys
        for attempt in range(1, RETRIES + 1):
            blank = is_blank(rgb).nonzero()[:, 0]
            if not len(blank):
                break
            keys = keys.clone()
            keys[blank] = Rng(keys[blank]).child("retry").keys
            classes = None if class_keys is None else class_keys[blank]
            rgb[blank] = render_programs(self._params(keys[blank], classes), res, self.depth)
            tries[blank] = attempt
        return rgb, tries

    def describe(self, index: int | None = None, seed: int = 0) -> Any:
        """Without an index: the manifest entry (name, family, parameters). With one: image
        `index`'s program as a readable expression."""
        if index is None:
            return super().describe()
        return self.program_text(index, seed)

    def program_text(self, index: int, seed: int = 0, res: int | None = None) -> str:
        """The program of image `index` (seed `seed`) as an indented expression."""
        if index < 0:
            raise NoisevisionError("image indices must be non-negative")
        index_t = torch.tensor([int(index)])
        rng = Rng.for_indices(self.key, seed, index_t)
        class_keys = self.class_keys(seed, index_t % self.num_classes) if self.num_classes else None
        res = self.spec.default_res if res is None else res
        with torch.no_grad():
            _, tries = self._render_with_tries(rng, min(res, 64), class_keys)  # the blank test at a low cost
        keys = rng.keys
        for _ in range(int(tries[0])):
            keys = Rng(keys).child("retry").keys
        p = self._params(keys, class_keys)
        head = f"{self.name} image {index} (seed {seed})"
        if self.num_classes:
            head += f", category {index % self.num_classes}"
        if int(tries[0]) and self.num_classes:
            head += f", numbers drawn {int(tries[0]) + 1} times (the first {int(tries[0])} rendered blank)"
        elif int(tries[0]):
            head += f", program {int(tries[0]) + 1} (the first {int(tries[0])} rendered blank)"
        return head + "\n" + describe_program({k: v[0] for k, v in p.items()}, self.depth)


NAME_PARAMS: dict[str, Callable[[str], Any]] = {
    "depth": int,
    "cppn_share": float,
    "classes": int,
    "spread": float,
}
CATEGORY_PARAMS = ("classes", "spread")  # every grammar takes them


def resolve_program(name: str, params: dict[str, Any]) -> Generator | None:
    """Registry resolver for `program-<grammar>:depth=N` (the complexity in the name, so that
    command lines and reproduction sources can set it), also `…:depth=N,cppn_share=F` and the
    categories `…:classes=C` (and `spread=S`)."""
    base, sep, args = name.partition(":")
    if not sep or not base.startswith("program-"):
        return None
    spec = registry.spec(base)  # an unknown grammar: "did you mean …"
    given: dict[str, Any] = {}
    # cppn_share only where CPPNs are mixed in
    takes = [k for k in NAME_PARAMS if k in spec.defaults or k in CATEGORY_PARAMS]
    for item in args.split(","):
        key, eq, value = item.partition("=")
        if key not in takes or not eq:
            others = f" ({base} takes {', '.join(takes)})" if eq and key in NAME_PARAMS else ""
            usage = f"{base}:depth=N (N in 1..{MAX_DEPTH}) or classes=C"
            raise NoisevisionError(f"'{name}': write {usage}{others}")
        if key in given:
            raise NoisevisionError(f"'{name}': {key} is given twice")
        try:
            given[key] = NAME_PARAMS[key](value)
        except ValueError:
            kind = {"depth": f"an integer in 1..{MAX_DEPTH}", "classes": "an integer"}.get(key, "a number")
            raise NoisevisionError(f"'{name}': {key} must be {kind}, not '{value}'") from None
    return registry.build_named(base, name, given, params)


_DESCRIPTION = {
    "cppn": "Random CPPN per image: an MLP over pixel coordinates, mixed activations, random palette.",
    "shader": "Random shader-like program per image: domain transforms, fields, combinators, palette.",
    "mixed": "Random image program per image: a shader-like expression, or a CPPN for one in five.",
}
# Defaults per name, chosen on the tiny preset (README): the shader tree one level deeper than the
# CPPN's depth 3, and a mix of mostly shader programs (half CPPNs scored lower on every probe).
_DEFAULTS = {"cppn": {"depth": 3}, "shader": {"depth": 4}, "mixed": {"depth": 3, "cppn_share": 0.2}}
for _grammar in GRAMMARS:
    register(
        f"program-{_grammar}",
        family="procedural programs",
        description=_DESCRIPTION[_grammar],
        grammar=_grammar,
        **_DEFAULTS[_grammar],
    )(ProceduralPrograms)
registry.register_resolver(
    resolve_program,
    "program-<grammar>:depth=N — a program family at complexity N (1..6; default 4 "
    "for program-shader, 3 for the others), e.g. program-shader:depth=5; program-mixed also takes "
    "cppn_share=F (default 0.2); classes=C makes C program categories (instances re-draw a "
    "program's numbers by spread=S, default 0.1), e.g. program-shader:classes=1000",
)

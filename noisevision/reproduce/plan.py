"""What a reproduction consists of: its presets, data sources, materialisation policy and
prerequisites, decided before anything runs.

A source is one row of the report: a generator, an image folder (`--extra-data NAME=DIR`) or a
baseline (a random network, raw pixels, mean colours). A source may need an encoder trained first
(`Needs`): feature_vis-dead_leaves visualises the ResNet-50 trained with MoCo v2 on
dead_leaves-mixed. That encoder is the dead_leaves-mixed run itself where the preset trains with
that recipe (paper-large), a prerequisite run in OUT/prerequisites/ otherwise (paper-small), or a
file the user gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from noisevision.errors import FieldError, NoisevisionError, UnknownNameError
from noisevision.evaluate.baselines import BASELINES
from noisevision.evaluate.probes import ProbeSettings
from noisevision.io import slug
from noisevision.registry import Registry
from noisevision.reproduce.cells import seed_tag

# The paper's datasets, in its order.
SPEC_DATASETS = (
    "dead_leaves-squares", "dead_leaves-oriented", "dead_leaves-mixed", "dead_leaves-textures",
    "stat-spectrum", "stat-wmm", "stat-spectrum_color", "stat-spectrum_color_wmm",
    "stylegan-random", "stylegan-highfreq", "stylegan-sparse", "stylegan-oriented",
    "feature_vis-random", "feature_vis-dead_leaves",
)  # fmt: skip

# The paper's results, small scale (SmallAlexNet, ImageNet-100, read off its chart, ±0.5).
PAPER_SMALL: dict[str, float] = {
    "mean-colors": 5.0, "raw-pixels": 8.8, "cnn-random": 20.9, "stat-spectrum": 30.6,
    "stat-wmm": 31.4, "fractaldb": 33.4, "stylegan-random": 34.0, "feature_vis-random": 34.6,
    "dead_leaves-squares": 35.1, "stat-spectrum_color": 36.7, "dead_leaves-oriented": 37.4,
    "dead_leaves-mixed": 38.9, "feature_vis-dead_leaves": 39.2, "stat-spectrum_color_wmm": 39.9,
    "dead_leaves-textures": 40.9, "stylegan-sparse": 42.0, "stylegan-highfreq": 42.1,
    "stylegan-oriented": 43.4,
}  # fmt: skip
# The paper's results, large scale (ResNet-50, MoCo v2), its table's ImageNet-100 column.
PAPER_LARGE: dict[str, float] = {
    "cnn-random": 10.84, "fractaldb": 44.06, "dead_leaves-mixed": 38.34,
    "feature_vis-dead_leaves": 49.48, "stat-spectrum_color_wmm": 56.04, "stylegan-oriented": 58.70,
}  # fmt: skip
# Published fine-tuning results of formula-driven supervised pre-training: ViT-Tiny pre-trained on
# 1k categories x 1k instances at 224 px, fine-tuned on CIFAR-100 (the FDSL small-set recipe, best
# epoch); "cnn-random" is the network trained from scratch. RCDB's is read off a chart (±0.5).
FDSL_CIFAR100: dict[str, float] = {
    "cnn-random": 64.2, "fractaldb": 81.6, "rcdb": 82.2, "fractal-1p": 84.2,
}  # fmt: skip


@dataclass(frozen=True)
class Reference:
    """Published numbers a report shows beside its own (another dataset and budget: a reference
    for the ranking, never a target for the values)."""

    numbers: dict[str, float]  # source name (parameters aside) -> top-1
    column: str  # the report table's column header
    about: str  # one sentence in the report: what these numbers are
    panel: str  # the chart panel's title
    legend: str  # the chart legend's entry
    missing: str  # the table cell of a source without a published number
    probe: str | None = None  # the only probe the numbers are comparable with (None: every probe)

    def number(self, source: str, probe: str) -> float | None:
        """The published top-1 of `source` (its parameters aside) beside `probe`'s result."""
        if self.probe is not None and probe != self.probe:
            return None
        return self.numbers.get(source.partition(":")[0])


REFERENCES: dict[str, Reference] = {
    scale: Reference(
        numbers,
        column="paper, ImageNet-100",
        about=(
            f"Paper numbers (from the paper's {scale}-scale table) are ImageNet-100 linear-probe "
            "accuracies of the paper's own encoders: **a different dataset, probe and budget**, shown "
            "only as a reference for the ranking, not as a target for the values."
        ),
        panel=f"the paper ({scale} scale): OTHER data\nImageNet-100, linear probe, its own encoders",
        legend="paper (ImageNet-100, other data)",
        missing="not in the paper",
    )
    for scale, numbers in (("small", PAPER_SMALL), ("large", PAPER_LARGE))
}
REFERENCES["fdsl"] = Reference(
    FDSL_CIFAR100,
    column="published, ViT-Tiny → CIFAR-100",
    about=(
        "Published numbers are the FDSL papers' ViT-Tiny fine-tuning accuracies on CIFAR-100 after "
        "pre-training on 1,000 categories × 1,000 instances at 224 px (CNN-Random: the ViT-Tiny "
        "trained from scratch): **a different network, dataset and budget**, shown beside the "
        "fine-tuning results only as a reference for the ranking, not as a target for the values."
    ),
    panel="published: OTHER data\nViT-Tiny, 1k categories, CIFAR-100 fine-tuning",
    legend="published (ViT-Tiny, CIFAR-100, other data)",
    missing="no published number",
    probe="finetune",
)
PAPER_NUMBERS = {scale: ref.numbers for scale, ref in REFERENCES.items()}
# Extra rows of the paper presets, not in the paper (the report marks them): random image programs,
# and their convex mix of 6 (as the successor paper's Shaders-21k + MixUp).
BEYOND_PAPER = ("program-cppn", "program-shader", "program-mixed", "mix6:program-shader")

# Families the "expensive" materialize policy renders once: generation, not training, is their cost,
# and streaming them would pay it once per epoch (feature visualization: 128 Adam steps through a
# ResNet-50 per image).
EXPENSIVE_FAMILIES = ("feature visualization",)
MATERIALIZE_HELP = (
    "all, none, or expensive (feature visualizations), optionally with generator names or "
    "families to render once too, comma-separated (e.g. expensive,stylegan-random)"
)


# ---------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class ReproPreset:
    """One reproduction recipe. `generators` entries may be "a|b": the first registered name."""

    name: str
    description: str
    generators: tuple[str, ...]
    train_preset: str
    train_overrides: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = tuple(n for n in BASELINES.names() if BASELINES.get(n).paper)
    eval_dataset: str = "fashion-mnist"
    probe: dict[str, Any] = field(default_factory=dict)  # ProbeSettings fields
    paper_scale: str = "small"  # which published results the report shows beside ours (REFERENCES)
    # Sources trained with another recipe than `train_preset`: source name -> training preset
    # (e.g. the self-supervised row of a formula-supervised comparison).
    recipes: dict[str, str] = field(default_factory=dict)
    # Which generators are rendered once to OUT/data/NAME/ and trained from there instead of streamed
    # (regenerated every epoch): MATERIALIZE_HELP, parsed by materialize_selectors.
    materialize: str = "none"
    distinct_images: int | None = None  # fewer distinct images, more epochs, same images seen
    # The recipe of the encoders that sources with `needs` visualise (the paper's: MoCo v2);
    # None: none is trained here, such sources need a given encoder file.
    feature_vis_train_preset: str | None = "paper-large"
    feature_vis_train_overrides: dict[str, Any] = field(default_factory=dict)
    # Independent repetitions of every cell (`reproduce --seeds` overrides it): the report gives
    # their mean, a 95 % interval and which differences between sources are significant.
    seeds: int = 1
    # `noisevision analyze` of the generators against the evaluation set, tied to the probes
    # (AnalyzeSettings fields; {"num_images": 0}: none), into OUT/analysis/.
    analysis: dict[str, Any] = field(default_factory=dict)

    def probe_settings(self, **overrides: Any) -> ProbeSettings:
        values = {"progress": True, **self.probe, **{k: v for k, v in overrides.items() if v is not None}}
        return ProbeSettings(**values)

    def recipe(self, source: str) -> str:
        """The training preset `source` is pre-trained with."""
        return self.recipes.get(source, self.train_preset)

    @property
    def reference(self) -> Reference:
        """The published results the report shows beside this preset's."""
        return REFERENCES[self.paper_scale]

    @property
    def shares_encoder_recipe(self) -> bool:
        """Whether every source trains with the recipe of the encoders that sources with `needs`
        visualise (paper-large): then a source's own run is the encoder it needs."""
        return (self.train_preset, self.train_overrides) == (
            self.feature_vis_train_preset,
            self.feature_vis_train_overrides,
        )


REPRO_PRESETS: Registry[ReproPreset] = Registry("reproduction preset")


def _add(preset: ReproPreset) -> None:
    REPRO_PRESETS.add(preset.name, preset, preset.description)


_add(
    ReproPreset(
        "demo",
        "CPU demo (make demo): 4 generator families of the paper, random image programs, "
        "baselines, Fashion-MNIST probes",
        # One fast generator per family (CPU rendering is the bottleneck).
        generators=(
            "dead_leaves-mixed",
            "stat-spectrum_color|stat-spectrum_color_wmm|stat-spectrum",
            "stylegan-oriented|stylegan-random",
            "fractaldb:classes=64|fractal-svd",  # 16 instances of 64 categories: a few seconds of search
            "program-mixed",
        ),
        # Per seed, half the images the training preset sees: 1,024 distinct ones rendered once (CPU
        # rendering of StyleGAN / fractals costs more than training on them), 3 epochs; so that its 3
        # seeds fit `make demo` into a few minutes of a 2-core CPU.
        train_preset="tiny",
        train_overrides={"num_images": 1024, "epochs": 3},
        materialize="all",
        # the rendered data measured against Fashion-MNIST and tied to the probes (report section
        # "which measure predicted this ranking"): 512 of each folder's images at 64 px, the
        # resolution it trained on, in about half a minute of a 2-core CPU
        analysis={"num_images": 512, "res": 64, "bootstraps": 25},
        feature_vis_train_preset=None,  # a ResNet-50 + MoCo v2 run is no CPU demo
        eval_dataset="fashion-mnist",
        probe=dict(
            probes=("fast", "knn", "lowshot"),
            subset=5000,
            test_subset=2000,
            lowshot_seeds=5,
            protocol="paper",
        ),
        seeds=3,  # the fewest repetitions that give an interval worth reading
    )
)
# The FDSL datasets (and image programs as categories) beside the best self-supervised source of
# the demo, the same network and image budget for each, judged by fine-tuning and by frozen probes.
FDSL_CLASSES = 32  # 32 instances each of 1,024 images; FractalDB's category search takes seconds
_add(
    ReproPreset(
        "fdsl-tiny",
        "CPU comparison of the two yardsticks: formula-supervised pre-training on FractalDB, RCDB, "
        "VisualAtom, 1p-frac and program categories against self-supervised StyleGAN-Oriented and "
        "training from scratch, by fine-tuning and by frozen probes on Fashion-MNIST",
        generators=(
            f"fractaldb:classes={FDSL_CLASSES}",
            f"rcdb:classes={FDSL_CLASSES}",
            f"visualatom:classes={FDSL_CLASSES}",
            f"fractal-1p:classes={FDSL_CLASSES}",
            f"program-shader:classes={FDSL_CLASSES}",
            "stylegan-oriented|dead_leaves-mixed",  # the demo's best noise source (and the paper's)
        ),
        train_preset="fdsl-tiny",
        # the same network, crops and images seen as the self-supervised row's `tiny` recipe
        train_overrides={"num_images": 1024, "epochs": 4},
        recipes={"stylegan-oriented": "tiny", "dead_leaves-mixed": "tiny"},
        analysis={"num_images": 0},  # a CPU budget: analyse with `noisevision analyze … --results OUT`
        materialize="all",
        feature_vis_train_preset=None,
        eval_dataset="fashion-mnist",
        # 100 labelled images per class: the small-set regime fine-tuning is judged in
        probe=dict(
            probes=("finetune", "fast", "knn"),
            subset=1000,
            test_subset=500,  # fine-tuning scores it after every epoch
            finetune_epochs=5,  # of the recipe's 1,000: what 15 minutes of 2 CPU cores allow
            protocol="paper",
        ),
        paper_scale="fdsl",
        seeds=3,
    )
)
_add(
    ReproPreset(
        "paper-small",
        "paper's small scale: SmallAlexNet on 105k images of each dataset, ImageNet-100 probe",
        generators=(*SPEC_DATASETS, "fractaldb", *BEYOND_PAPER),
        train_preset="paper-small",
        eval_dataset="imagenet100",
        probe=dict(probes=("linear", "fast", "knn"), protocol="paper", workers=8),
        materialize="expensive",  # the paper trained on fixed datasets, rendered once
    )
)
_add(
    ReproPreset(
        "paper-large",
        "paper's large scale: ResNet-50 MoCo v2 on 1.3M images, ImageNet-100 probe",
        generators=(*SPEC_DATASETS, "fractaldb", *BEYOND_PAPER),
        train_preset="paper-large",
        eval_dataset="imagenet100",
        probe=dict(probes=("linear", "knn"), protocol="moco", workers=8),
        paper_scale="large",
        materialize="expensive",
    )
)


MAX_SEEDS = 100  # a sane bound: a typo such as --seeds 1000 must not queue a thousand trainings


def check_seeds(seeds: object) -> int:
    """`seeds` as a count of repetitions, 1..MAX_SEEDS; NoisevisionError (one line) otherwise."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise FieldError("seeds", f"{{field}} must be an integer from 1 to {MAX_SEEDS}, got {seeds!r}")
    return seeds


def repetition_seed(base: int, seed: int) -> int:
    """The seed repetition `seed` uses where the single run uses `base`: base + seed, for the
    training run (its images, augmentations, index order and initial weights; a baseline's random
    weights) and for the probes (their train/test subsets and head initialisation). Seed 0 is the
    single run itself."""
    return base + seed


def get_repro_preset(preset: str | ReproPreset) -> ReproPreset:
    """A registered preset by name (a ReproPreset is used as it is)."""
    return preset if isinstance(preset, ReproPreset) else REPRO_PRESETS.get(preset)


# ---------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Needs:
    """An encoder a source's images come from, trained first on the generator `trained_on` with
    the preset's encoder recipe; the source's data is then `template` with its file's path."""

    trained_on: str
    template: str  # e.g. "feature_vis-{}"
    what: str  # the encoder, in words: "a ResNet-50"


@dataclass(frozen=True)
class Source:
    """One row of the report: what the encoder saw (or which baseline it is)."""

    name: str
    kind: str  # "generator" | "folder" | "baseline"
    family: str
    label: str
    data: str = ""  # what noisevision.train reads (generator name or folder); "" until `needs` is met
    needs: Needs | None = None
    encoder: str = ""  # the encoder file `data` renders from, once `needs` is met

    def with_encoder(self, path: str | Path) -> Source:
        """This source with its `needs` met by the encoder file `path`."""
        return replace(self, data=self.needs.template.format(path), encoder=str(path))


#: Sources that are no registered generator but derive one from an encoder trained first.
DERIVED: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "feature_vis-dead_leaves",
            "generator",
            "feature visualization",
            "Feature vis. – Dead leaves",
            needs=Needs("dead_leaves-mixed", "feature_vis-{}", "a ResNet-50"),
        ),
    )
}


def derived_source(name: str, encoder: str | Path | None = None) -> Source:
    """The derived source `name`, its data filled in when its encoder file is given (checked
    here, in one line: the generator must accept the file, e.g. a ResNet-50 encoder)."""
    from noisevision.generators import get

    source = DERIVED[name]
    if encoder:
        if not Path(encoder).is_file():
            raise FieldError("feature_vis_encoder", f"{{field}} {encoder}: no such file")
        source = source.with_encoder(encoder)
        get(source.data)
    return source


def resolve_sources(
    preset: ReproPreset,
    generators: list[str] | None = None,
    extra_data: dict[str, str] | None = None,
    feature_vis_encoder: str | Path | None = None,
) -> tuple[list[Source], list[str]]:
    """The preset's sources (or `generators`), folders and baselines; plus notes on skipped names.

    `feature_vis_encoder`: the encoder file the derived sources visualise instead of one trained here.
    """
    notes: list[str] = []
    sources: list[Source] = []
    derived = {name: derived_source(name, feature_vis_encoder) for name in DERIVED}  # checks the file first
    for entry in generators or preset.generators:
        if entry in derived:
            if not any(s.name == entry for s in sources):
                sources.append(derived[entry])
            continue
        choices = entry.split("|")
        found = next(((c, spec) for c in choices if (spec := generator_spec(c)) is not None), None)
        if found is None:
            if generators:  # asked for explicitly: an error, not a note
                from noisevision.generators import get

                get(choices[0])
            notes.append(f"skipped {' / '.join(choices)}: {_why_unavailable(choices[-1])}")
            continue
        name, spec = found
        if not any(s.name == name for s in sources):
            sources.append(Source(name, "generator", spec.family, spec.label or name, name))
    for name, folder in (extra_data or {}).items():
        if not Path(folder).is_dir():
            raise FieldError("extra_data", f"{{field}} {name}={folder}: no such folder")
        sources.append(Source(name, "folder", "image folder", name, str(Path(folder).expanduser())))
    for b in preset.baselines:
        sources.append(Source(b, "baseline", "baseline", BASELINES.get(b).label))
    if feature_vis_encoder and not any(s.needs for s in sources):
        notes.append(f"--feature-vis-encoder unused: none of {', '.join(DERIVED)} is among the generators")
    _check_distinct_files(sources)
    return sources, notes


def runs_probe(source: str, probe: str) -> bool:
    """Whether source `source` gets a cell for `probe`: every source but a baseline without
    weights (raw pixels, mean colours) under a probe that trains the network (fine-tuning)."""
    from noisevision.evaluate.probes import PROBES

    if source in BASELINES and not BASELINES.get(source).takes_arch:
        return not PROBES.get(probe).trains_model
    return True


def _check_distinct_files(sources: list[Source]) -> None:
    """Every source gets its own files (run_folder, data_folder, cells): two names that give the
    same file name (slug) would overwrite each other's results, and the report would drop one."""
    taken: dict[str, str] = {}
    for s in sources:
        key = slug(s.name).lower()  # case-insensitive file systems fold case
        if key in taken:
            raise FieldError(
                "extra_data",
                f"sources '{taken[key]}' and '{s.name}' would share their result files: name one "
                "otherwise ({field} NAME=FOLDER)",
            )
        taken[key] = s.name


def generator_spec(name: str) -> Any:
    """The registry row of `name`, also for parametric names (e.g. mix6:a+b); None if unknown."""
    from noisevision import generators

    if name in generators.GENERATORS:
        return generators.spec(name)
    try:
        return generators.get(name).spec
    except NoisevisionError:
        return None


def _why_unavailable(name: str) -> str:
    from noisevision.generators import get

    try:
        get(name)
    except UnknownNameError:
        return "not registered in this installation"
    except NoisevisionError as exc:  # e.g. a parametric name whose argument is missing
        return str(exc)
    return "unavailable"


def generation_res(name: str, res: int | None) -> int | None:
    """The resolution to render `name` at: `res`, or the nearest one the generator can make
    (e.g. StyleGAN renders 128, 256 or 512 px only; training crops are resized anyway)."""
    spec = generator_spec(name)
    if res is None or spec is None or not spec.resolutions or res in spec.resolutions:
        return res
    larger = [r for r in spec.resolutions if r >= res]
    return min(larger) if larger else max(spec.resolutions)


def parse_extra_data(items: list[str] | None) -> dict[str, str]:
    """["NAME=DIR", ...] -> {NAME: DIR}."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise FieldError("extra_data", f"bad {{field}} '{item}': write NAME=DIR")
        out[name] = folder
    return out


# ---------------------------------------------------------------------------------- prerequisites
def run_folder(out: Path, source: str, seed: int = 0) -> Path:
    """The training run of `source` in repetition `seed` (noisevision.train's run folder)."""
    return out / "runs" / f"{slug(source)}{seed_tag(seed)}"


def data_folder(out: Path, source: str, seed: int = 0) -> Path:
    """Where `source`'s images of repetition `seed` are rendered once (materialize)."""
    return out / "data" / f"{slug(source)}{seed_tag(seed)}"


def prerequisite_path(needs: Needs, preset: ReproPreset, out: Path, seed: int = 0) -> Path:
    """Where the encoder a source needs in repetition `seed` is (or will be): that repetition's
    run of the source it trains on when the preset shares the encoder's recipe, else a
    prerequisite run of its own (one per repetition: its images and weights are part of it)."""
    from noisevision.train import ENCODER, TrainConfig

    if preset.shares_encoder_recipe:
        return run_folder(out, needs.trained_on, seed) / ENCODER
    arch = TrainConfig.from_preset(preset.feature_vis_train_preset, **preset.feature_vis_train_overrides).arch
    return out / "prerequisites" / f"{needs.trained_on}-{slug(arch)}{seed_tag(seed)}" / ENCODER


def plan_prerequisites(
    sources: list[Source], preset: ReproPreset, out: Path
) -> tuple[list[Source], list[str]]:
    """Keep each source that needs an encoder where that encoder is given, exists, or can be
    trained here (its generator is one of this reproduction's sources); a note for each says which
    encoder it visualises, or why it is skipped."""
    kept, notes = [], []
    for s in sources:
        needs = s.needs
        if needs is None:
            kept.append(s)
            continue
        encoder = needs.what.removeprefix("a ")
        given = f"pass --feature-vis-encoder PATH to {needs.what} encoder.pt"
        if s.encoder:
            kept.append(s)
            notes.append(f"{s.name} visualises {s.encoder} (--feature-vis-encoder)")
            continue
        if preset.feature_vis_train_preset is None:
            notes.append(
                f"skipped {s.name}: preset '{preset.name}' trains no {encoder} on "
                f"{needs.trained_on} ({given})"
            )
            continue
        path = prerequisite_path(needs, preset, out)
        if preset.shares_encoder_recipe:
            how = f"the {encoder} of the {needs.trained_on} run"
        else:
            how = (
                f"{needs.what} trained first on {needs.trained_on} with the "
                f"'{preset.feature_vis_train_preset}' recipe in {path.parent}"
            )
        if any(o.name == needs.trained_on for o in sources) or path.is_file():
            kept.append(s)
            notes.append(f"{s.name} visualises {how}")
        else:
            notes.append(
                f"skipped {s.name}: it visualises {how}, but {needs.trained_on} is not among "
                f"the generators (add it, or {given})"
            )
    return kept, notes


# ---------------------------------------------------------------------------------- materialisation
def materialize_selectors(policy: str) -> frozenset[str]:
    """The generator names and families a materialize policy renders once ("*": every generator)."""
    from noisevision import generators

    tokens = [t.strip() for t in policy.split(",") if t.strip()]
    if tokens in (["all"], ["none"]):
        return frozenset({"*"} if tokens == ["all"] else ())
    families = {s.family for s in generators.specs()}
    selected: set[str] = set()
    for token in tokens or [""]:
        if token == "expensive":
            selected.update(EXPENSIVE_FAMILIES)
        elif token in families or token in DERIVED or generator_spec(token) is not None:
            selected.add(token)
        else:
            alone = token in ("all", "none")
            why = f"{token} stands alone" if alone else f"'{token}' is no generator or family"
            raise FieldError("materialize", f"bad {{field}} '{policy}': {why}; use {MATERIALIZE_HELP}")
    return frozenset(selected)


def renders_once(selectors: frozenset[str], source: Source) -> bool:
    """Whether `source` is trained from its images rendered once (else streamed)."""
    return source.kind == "generator" and bool({"*", source.name, source.family} & selectors)

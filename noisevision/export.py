"""Encoders out of noisevision: weights as safetensors under torchvision's, timm's or our own key
names, with a model card beside them (`noisevision export`).

    noisevision export runs/dl --format torchvision --out dl-resnet50.safetensors

    model = torchvision.models.resnet50(); model.fc = torch.nn.Identity()
    model.load_state_dict(safetensors.torch.load_file("dl-resnet50.safetensors"))   # strict

Formats (FORMATS, `noisevision list export-formats`):
- timm also holds the ViTs (noisevision.models.vit): the trunk's tensors under timm's own names,
  which load strictly into `timm.create_model(NAME, num_classes=0, **OPTIONS)` with the timm name
  and options the encoder records (img_size and patch_size for the small-input variants); the
  output is the class token after the final norm, our "cls" probe layer.
- torchvision, timm: the ResNet trunk (conv1, bn1, layer1..layer4). Both libraries name a ResNet's
  tensors alike (timm/models/resnet.py keeps torchvision's names for weight compatibility), so the
  tensors are the same and the formats differ in their metadata and the card's loading lines.
  The projection head used by the training loss is dropped and there is no classifier: the model
  loads strictly once its `fc` is nn.Identity() (timm: num_classes=0) and returns the pooled layer4
  features, our "pool" probe layer. The small-stem variants (resnet18-s, resnet50-s) need the
  model's stem swapped first (a 3×3 stride-1 conv1, no max-pool), which the card's lines do.
- noisevision: every tensor under our own names (the head included) with the architecture, its
  options, the training recipe, metadata and checksum in the safetensors metadata: the encoder
  file format (noisevision.models.encoder_file), which `load_encoder` reads like an encoder.pt.

The card (README.md beside the weights, or FILE.README.md when the folder already has a README.md
that is not our card of this file) gives the data, the recipe, the images seen, the probe results
found beside the encoder (eval-*.json, a reproduction's cells) and the lines that load it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

import noisevision
from noisevision.errors import FieldError, NoisevisionError
from noisevision.hub import (
    HUB_CARD,
    HUB_CONFIG,
    HUB_WEIGHTS,
    HubCard,
    check_model_folder,
    eval_resize,
    timm_hub_config,
)
from noisevision.io import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_file,
    recorded_place,
    slug,
)
from noisevision.models.encoder_file import EXPORT_KEY, Recipe, encoder_path, load_encoder, safetensors_fields
from noisevision.models.library import ResNetLayout, library_resnet
from noisevision.models.resnet import ResNetEncoder
from noisevision.registry import Registry

SUFFIX = ".safetensors"
OTHER_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".onnx", ".h5")  # an --out that is a mistake
CARD_MARK = "<!-- noisevision model card of "  # first line after the front matter: "... FILE -->"
HEAD_PREFIX = "head."  # the projection head's tensors (ResNetEncoder.head, ViTEncoder.head)


# ---------------------------------------------------------------------------------------- layouts
def resnet_layout(encoder: nn.Module, fmt: str) -> ResNetLayout:
    """`library_resnet`, or NoisevisionError naming the formats that can hold the encoder."""
    found = library_resnet(encoder, fmt)
    if isinstance(found, str):
        arch = getattr(encoder, "arch", type(encoder).__name__)
        raise NoisevisionError(
            f"'{arch}' has no {fmt} equivalent: it {found}; export it with --format "
            f"{' or '.join(formats_for(encoder))}"
        )
    return found


def timm_model(encoder: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """(timm name, create_model options) of an encoder whose trunk is a timm model, else None."""
    name = getattr(encoder, "timm_model", None)
    return (name, dict(encoder.timm_kwargs)) if name else None


def _timm_call(encoder: nn.Module) -> str:
    """The `timm.create_model(...)` call that builds the encoder's trunk without a classifier."""
    name, options = timm_model(encoder) or ("", {})
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return f'timm.create_model("{name}", num_classes=0{extra})'


def trunk_tensors(encoder: nn.Module) -> dict[str, Tensor]:
    """The ResNet trunk's tensors (the projection head left out), under torchvision's names."""
    return {k: v for k, v in encoder.state_dict().items() if not k.startswith(HEAD_PREFIX)}


# ---------------------------------------------------------------------------------------- formats
@dataclass(frozen=True)
class ExportFormat:
    """One target: which tensors it holds, and the lines that load them (for the card)."""

    library: str
    trunk_only: bool  # a library model's trunk (ResNets, timm ViTs), or every tensor of any encoder
    loading: Callable[[nn.Module, str], list[str]]  # (encoder, file name) -> Python lines
    import_line: str
    timm_trunks: bool = False  # also holds encoders whose trunk is a timm model (the ViTs)
    library_name: str = ""  # the Hub's name of the library that loads a model folder of it
    hub_config: Callable[[nn.Module, Recipe], dict[str, Any]] | None = None  # its config.json

    def holds_timm(self, encoder: nn.Module) -> bool:
        return self.timm_trunks and timm_model(encoder) is not None

    def supports(self, encoder: nn.Module) -> bool:
        return (
            not self.trunk_only
            or self.holds_timm(encoder)
            or isinstance(library_resnet(encoder, self.library), ResNetLayout)
        )

    def tensors(self, encoder: nn.Module) -> dict[str, Tensor]:
        """What the file holds; NoisevisionError when this format cannot hold `encoder`."""
        if not self.trunk_only:
            return dict(encoder.state_dict())
        if self.holds_timm(encoder):
            return encoder.timm_state_dict()
        if self.timm_trunks and not isinstance(encoder, ResNetEncoder):
            arch = getattr(encoder, "arch", type(encoder).__name__)
            raise NoisevisionError(
                f"'{arch}' has no {self.library} equivalent: it is neither a ResNet nor a ViT; "
                f"export it with --format {' or '.join(formats_for(encoder))}"
            )
        resnet_layout(encoder, self.library)
        return trunk_tensors(encoder)

    def dropped(self, encoder: nn.Module) -> list[str]:
        """The encoder's tensors the file leaves out: the projection head of a library trunk."""
        return sorted(k for k in encoder.state_dict() if self.trunk_only and k.startswith(HEAD_PREFIX))


def _stem_lines(layout: ResNetLayout) -> list[str]:
    """The small stem: a 3×3 stride-1 conv1 and no max-pool (how solo-learn adapts to CIFAR)."""
    if not layout.small_stem:
        return []
    return [
        f"model.conv1 = torch.nn.Conv2d(3, {layout.stem_width}, 3, 1, 1, bias=False)  # small stem: "
        "3×3 stride 1",
        "model.maxpool = torch.nn.Identity()  # small stem: no max-pool",
    ]


def _torchvision_lines(encoder: nn.Module, filename: str) -> list[str]:
    layout = resnet_layout(encoder, "torchvision")
    return [
        f"model = torchvision.models.{layout.builder}()",
        "model.fc = torch.nn.Identity()  # no classifier: the output is the pooled features",
        *_stem_lines(layout),
        f'model.load_state_dict(load_file("{filename}"))  # strict',
    ]


def _timm_lines(encoder: nn.Module, filename: str) -> list[str]:
    if timm_model(encoder) is not None:
        return [
            f"model = {_timm_call(encoder)}  # no classifier",
            f'model.load_state_dict(load_file("{filename}"))  # strict',
        ]
    layout = resnet_layout(encoder, "timm")
    extra = "".join(f", {k}={_python(v)}" for k, v in layout.timm_args.items())
    return [
        f'model = timm.create_model("{layout.builder}", num_classes=0{extra})  # no classifier',
        *_stem_lines(layout),
        f'model.load_state_dict(load_file("{filename}"))  # strict',
    ]


def _python(value: Any) -> str:
    """A JSON-like option as the card's Python writes it: "text" in double quotes, lists as tuples."""
    if isinstance(value, str):
        return json.dumps(value)
    return repr(tuple(value) if isinstance(value, list) else value)


def _noisevision_lines(encoder: nn.Module, filename: str) -> list[str]:
    return [
        f'encoder, meta = load_encoder("{filename}")  # meta["recipe"]: how to feed it',
        f"features = encoder.features(x)  # [B, F], the probe layer ({encoder.default_layer})",
    ]


def _timm_folder_config(encoder: nn.Module, recipe: Recipe) -> dict[str, Any]:
    """hub.timm_hub_config of the timm model the encoder's trunk is; NoisevisionError for an encoder
    that no timm architecture builds exactly."""
    vit = timm_model(encoder)
    if vit is not None:
        return timm_hub_config(*vit, True, encoder.feat_dim, recipe)
    layout = resnet_layout(encoder, "timm")
    if layout.small_stem:
        raise NoisevisionError(
            f"'{encoder.arch}' has no timm model folder: timm's ResNets start with a 7×7 stride-2 "
            "conv and a max-pool, not its 3×3 stride-1 stem; export it to a .safetensors file (its "
            "card swaps the stem) or with --format noisevision"
        )
    first_conv = "conv1.0" if layout.deep_stem else "conv1"
    return timm_hub_config(layout.builder, layout.timm_args, False, encoder.feat_dim, recipe, first_conv)


FORMATS: Registry[ExportFormat] = Registry("export format")
FORMATS.add(
    "torchvision",
    ExportFormat(
        "torchvision",
        True,
        _torchvision_lines,
        "import torch, torchvision\nfrom safetensors.torch import load_file",
        library_name="pytorch",
    ),
    "ResNet trunk under torchvision's names, for torchvision.models.resnetN() (no fc)",
)
FORMATS.add(
    "timm",
    ExportFormat(
        "timm",
        True,
        _timm_lines,
        "import timm, torch\nfrom safetensors.torch import load_file",
        True,
        library_name="timm",
        hub_config=_timm_folder_config,
    ),
    "ResNet or ViT trunk under timm's names, for timm.create_model(NAME, num_classes=0); to a folder: "
    "a timm model folder for create_model('hf-hub:…')",
)
FORMATS.add(
    "noisevision",
    ExportFormat("noisevision", False, _noisevision_lines, "from noisevision.models import load_encoder"),
    "every tensor plus architecture and recipe, read back by noisevision's load_encoder",
)


def formats_for(encoder: nn.Module) -> list[str]:
    """The export formats that can hold `encoder`."""
    return [name for name in FORMATS if FORMATS.get(name).supports(encoder)]


# ---------------------------------------------------------------------------------------- export
@dataclass
class Exported:
    """What `export_encoder` wrote (`folder`: the model folder, None for a .safetensors file)."""

    weights: Path
    card: Path
    format: str
    tensors: int
    dropped: list[str]
    folder: Path | None = None
    config: Path | None = None


def export_encoder(
    source: str | Path, fmt: str, out: str | Path, license: str = "mit", repo: str | None = None
) -> Exported:
    """Write `source`'s encoder (a file or run folder) in format `fmt`, with its model card.

    `out` a .safetensors file: the weights, and the card beside them. `out` a folder: a model folder
    as the Hub holds one, model.safetensors and the card as README.md with model-card metadata
    (`license`), plus for timm the config.json that `timm.create_model("hf-hub:REPO")` reads (the
    card names REPO when given, the folder otherwise). Everything is checked before anything is
    written.
    """
    target = FORMATS.get(fmt)  # an unknown format: "did you mean …"
    typed = str(out)
    out = Path(out).expanduser()
    folder = out.suffix != SUFFIX
    if folder and out.suffix.lower() in OTHER_WEIGHT_SUFFIXES:
        raise FieldError("out", f"{{field}} must name a {SUFFIX} file or a model folder, not '{out}'")
    if folder:
        check_model_folder(out)
    else:
        check_output_file(out)  # a folder, or a place nothing can be written: one line
    path = encoder_path(source)
    encoder, meta = load_encoder(path)  # not an encoder: one line
    encoder.eval()
    tensors = target.tensors(encoder)  # not expressible in this format: one line
    dropped = target.dropped(encoder)
    recipe: Recipe = meta.pop("recipe")
    config = target.hub_config(encoder, recipe) if folder and target.hub_config else None
    weights = out / HUB_WEIGHTS if folder else out
    card_path = out / HUB_CARD if folder else card_path_for(out)
    hub = HubCard(license, repo, typed) if folder else None
    card = model_card(encoder, meta, recipe, fmt, weights.name, tensors, dropped, path, hub)
    blob = _safetensors_bytes(tensors, _metadata(encoder, meta, recipe, fmt, tensors))
    atomic_write_bytes(weights, blob)
    if config is not None:
        atomic_write_text(out / HUB_CONFIG, json.dumps(config, indent=2) + "\n")
    atomic_write_text(card_path, card)
    config_path = out / HUB_CONFIG if config is not None else None
    return Exported(weights, card_path, fmt, len(tensors), dropped, out if folder else None, config_path)


def _metadata(
    encoder: nn.Module, meta: dict[str, Any], recipe: Recipe, fmt: str, tensors: dict[str, Tensor]
) -> dict[str, str]:
    """The safetensors header metadata (strings only): what the weights are, in every format;
    the noisevision format adds what `load_encoder` needs to rebuild the encoder."""
    info = {
        EXPORT_KEY: fmt,
        "arch": encoder.arch,
        "recipe": json.dumps(recipe.to_dict()),
        "noisevision_version": noisevision.__version__,
    }
    if fmt == "noisevision":
        info.update(safetensors_fields(encoder, meta, tensors))
    elif FORMATS.get(fmt).holds_timm(encoder):  # what to build before loading: timm's name, options
        name, options = timm_model(encoder) or ("", {})
        info.update(timm_model=name, timm_kwargs=json.dumps(options))
    return info


def _safetensors_bytes(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    # safetensors wants contiguous tensors that share no memory
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata)


# ---------------------------------------------------------------------------------------- card
def card_path_for(out: Path) -> Path:
    """README.md beside `out`, unless the folder holds a README.md that is not our card of `out`:
    then OUT_STEM.README.md (refused when that too exists and is not our card of `out`)."""
    readme = out.parent / "README.md"
    if not readme.exists() or _is_card_of(readme, out.name):
        return readme
    alternative = out.parent / f"{out.stem}.README.md"
    if alternative.exists() and not _is_card_of(alternative, out.name):
        raise NoisevisionError(
            f"{alternative} exists and is not a model card of {out.name}: choose another "
            "--out or move it away"
        )
    return alternative


def _is_card_of(path: Path, filename: str) -> bool:
    try:
        head = path.read_text(errors="replace")[:4000]
    except OSError:
        return False
    return f"{CARD_MARK}{filename} -->" in head


def probe_results(encoder_path: Path) -> list[dict[str, Any]]:
    """Probe results of this encoder found beside it: rows {source, dataset, probe, top1, std, layer,
    n_train, n_test} from eval-*.json (noisevision eval) and, for a run inside a reproduction
    folder (OUT/runs/NAME/), from OUT/cells/."""
    from noisevision.reproduce.cells import load_cells, read_cell

    encoder_path = encoder_path.resolve()
    rows = []
    for p in sorted(encoder_path.parent.glob("eval-*.json")):
        result = read_cell(p)
        if not isinstance(result, dict) or not isinstance(result.get("probes"), dict):
            continue
        of = (result.get("meta") or {}).get("path")
        if of and recorded_place(of, p.parent).resolve() != encoder_path:
            continue  # another encoder file of the same folder
        for probe, r in result["probes"].items():
            rows.append(
                {
                    "source": p.name,
                    "dataset": result.get("dataset"),
                    "probe": probe,
                    "top1": r.get("top1"),
                    "std": r.get("std"),
                    "layer": result.get("layer"),
                    "n_train": result.get("n_train"),
                    "n_test": result.get("n_test"),
                }
            )
    run = encoder_path.parent
    root = run.parent.parent
    if run.parent.name == "runs" and (root / "plan.json").is_file():
        for c in load_cells(root):
            mine = c.get("encoder") and recorded_place(c["encoder"], root).resolve() == encoder_path
            same_name = c.get("kind") != "baseline" and slug(str(c.get("source"))) == run.name
            if mine or same_name:
                rows.append(
                    {
                        "source": f"reproduction {root.name} ({c.get('preset')})",
                        **{
                            k: c.get(k)
                            for k in ("dataset", "probe", "top1", "std", "layer", "n_train", "n_test")
                        },
                    }
                )
    return rows


def _source(meta: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """The training image source as the run described it (ImageSource.describe), or {}."""
    for described in (recipe.data, meta.get("source")):
        if isinstance(described, dict):
            return described
    return {}


def _data_name(meta: dict[str, Any], recipe: Recipe, run: Path) -> str:
    """The training data in a few words: the --data name, or the generator of a generated folder
    (`run`: the folder of the encoder file, which records the folder's path from there)."""
    source = _source(meta, recipe)
    if source.get("kind") == "folder" and (manifest := _manifest(source.get("root"), run)):
        return f"{manifest.get('generator')} images"
    for data in (meta.get("data"), recipe.data):
        if isinstance(data, str) and data:
            return data
    return "unrecorded data"


def _data_lines(meta: dict[str, Any], recipe: Recipe, run: Path) -> list[str]:
    """Where the training images came from, in words."""
    source = _source(meta, recipe)
    lines = [f"- data: `{meta.get('data') or _data_name(meta, recipe, run)}`"]
    if source.get("kind") == "generator":
        lines.append(
            f"- generator `{source.get('name')}` ({source.get('family')}), parameters "
            f"{source.get('params') or 'default'}, seed {source.get('seed')}, "
            f"{source.get('res')} px"
        )
    elif source.get("kind") == "mix":
        parts = ", ".join(f"`{p.get('name')}` × {w:.2f}" for p, w in zip(source["parts"], source["weights"]))
        lines.append(f"- a mix of generators: {parts}")
    elif source.get("kind") == "folder":
        lines.append(f"- a folder of {source.get('files')} images at {source.get('res')} px")
        manifest = _manifest(source.get("root"), run)
        if manifest:
            lines.append(
                f"- the folder was written by `noisevision generate {manifest.get('generator')}` "
                f"(parameters {manifest.get('params') or 'default'}, seed {manifest.get('seed')}, "
                f"{manifest.get('res')} px, {manifest.get('num')} images, {manifest.get('format')})"
            )
    return lines


def _manifest(root: Any, run: Path) -> dict[str, Any] | None:
    """The manifest of a training folder the run folder `run` recorded, if it is still there."""
    from noisevision.data.folder import read_manifest

    try:
        return read_manifest(recorded_place(root, run)) if root else None
    except (NoisevisionError, OSError, TypeError):
        return None


def _table(rows: list[list[Any]]) -> list[str]:
    cells = [[("-" if v is None else str(v)).replace("|", "\\|") for v in row] for row in rows]
    return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])] + [
        "| " + " | ".join(r) + " |" for r in cells[1:]
    ]


def model_card(
    encoder: nn.Module,
    meta: dict[str, Any],
    recipe: Recipe,
    fmt: str,
    filename: str,
    tensors: dict[str, Tensor],
    dropped: list[str],
    encoder_path: Path,
    hub: HubCard | None = None,
) -> str:
    """The Markdown model card of an export; `hub`: of a model folder (README.md), with the Hub's
    model-card metadata and, for timm, the `timm.create_model` lines that read its config.json."""
    target = FORMATS.get(fmt)
    arch = encoder.arch
    n_params = sum(t.numel() for k, t in tensors.items() if t.is_floating_point() and "running_" not in k)
    method = recipe.method or meta.get("method") or "an unrecorded method"
    size, resize = recipe.input_size, eval_resize(recipe.input_size)
    data_name = _data_name(meta, recipe, encoder_path.parent)
    tags = ["image-feature-extraction", *([target.library_name] if hub and target.library_name else [])]
    front = [f"library_name: {target.library_name}"] if hub and target.library_name else []
    if hub:
        front += [f"license: {hub.license}", "pipeline_tag: image-feature-extraction"]
    lines = [
        "---",
        *front,
        f"tags: [{', '.join([*tags, 'noisevision', 'self-supervised', 'synthetic-data'])}]",
        "---",
        f"{CARD_MARK}{filename} -->",
        "",
        f"# {arch} pre-trained on {data_name} with {method} (noisevision)",
        "",
        f"`{filename}`: {_what(arch, fmt)} ({len(tensors)} tensors, {n_params / 1e6:.2f} M parameters, "
        "safetensors), self-supervised on synthetic images that noisevision renders from random processes: "
        "no real image was seen in training.",
        "",
        "## Load it",
        "",
    ]
    if hub and target.hub_config:
        lines += hub.timm_lines()
    lines += ["```python", target.import_line, *target.loading(encoder, filename), "```", ""]
    vit = target.holds_timm(encoder)
    if fmt != "noisevision":
        lines += [
            f"The output is the {getattr(encoder, 'feat_dim', '?')}-d class token after the final norm "
            "(noisevision's `cls` probe layer); `model.forward_features(x)` gives every token."
            if vit
            else f"The output is the {getattr(encoder, 'feat_dim', '?')}-d globally pooled layer4 "
            "features (noisevision's `pool` probe layer)."
        ]
        if dropped:
            heads = sorted({k.split(".")[0] for k in dropped})
            shapes = ", ".join(f"`{k}` {list(encoder.state_dict()[k].shape)}" for k in dropped)
            lines += [
                f"Dropped: the projection head ({', '.join(heads)}: {shapes}), used only by the "
                "training loss."
            ]
        lines += (
            [
                "There is no `head` tensor: the network never had a classifier. Build it with "
                "`num_classes=0` as above to load with `strict=True`, or with your `num_classes` and "
                "load with `strict=False` (check that only `head.*` are reported missing).",
                "",
            ]
            if vit
            else [
                "There is no `fc` tensor: the network never had a classifier. Replace `fc` with "
                "`nn.Identity()` as above to load with `strict=True`, or add your own `fc` and load with "
                "`strict=False` (check that only `fc.*` are reported missing).",
                "",
            ]
        )
        if not vit and resnet_layout(encoder, fmt).small_stem:
            lines += [
                f"Stem: `{arch}` has the small-image stem (3×3 stride-1 `conv1`, no max-pool), not "
                f"{fmt}'s 7×7 stride-2 conv and max-pool: the two stem lines above are needed.",
                "",
            ]
    lines += [
        "## Feed it",
        "",
        f"RGB images scaled to [0, 1], normalised with mean {list(recipe.mean)} and std {list(recipe.std)}, "
        f"{size}×{size} px. The probes' test view resizes the shorter side to {resize} px and "
        f"centre-crops {size} px:",
        "",
        "```python",
        "import torch",
        "from torchvision.transforms import v2",
        f"preprocess = v2.Compose([v2.ToImage(), v2.Resize({resize}), v2.CenterCrop({size}),",
        f"                         v2.ToDtype(torch.float32, scale=True), v2.Normalize({list(recipe.mean)}, "
        f"{list(recipe.std)})])",
        "```",
        "",
        "## Training",
        "",
        *_data_lines(meta, recipe, encoder_path.parent),
        f"- method: {method}; augmentation: {recipe.augment or 'not recorded'}; preset: "
        f"{meta.get('preset', 'not recorded')}",
        f"- architecture: `{arch}` {encoder.arch_kwargs or ''}".rstrip(),
        f"- images seen: {_count(meta.get('images_seen'))}{_epochs(meta)}",
        f"- crops of {size} px from {recipe.res or meta.get('res', '?')} px images; seed "
        f"{meta.get('seed', '?')}; precision {meta.get('precision', '?')}",
        f"- linear-probe protocol that suits it: `{recipe.protocol}`; probe layer `{recipe.layer}`",
        f"- exported from `{encoder_path}` by noisevision {noisevision.__version__}",
        "",
        "## Probe results",
        "",
    ]
    rows = probe_results(encoder_path)
    if rows:
        header = ["where", "dataset", "probe", "top-1 %", "layer", "train/test images"]
        body = [
            [r["source"], r["dataset"], r["probe"], _top1(r), r["layer"], f"{r['n_train']}/{r['n_test']}"]
            for r in rows
        ]
        lines += [*_table([header, *body]), ""]
    else:
        lines += ["None found beside the encoder (`noisevision eval` writes them there).", ""]
    return "\n".join(lines)


def _what(arch: str, fmt: str) -> str:
    if fmt == "noisevision":
        return f"the whole `{arch}` encoder (projection head included) with its recipe, for noisevision"
    return f"the `{arch}` backbone under {fmt}'s key names"


def _epochs(meta: dict[str, Any]) -> str:
    if not isinstance(meta.get("epochs"), int) or not isinstance(meta.get("num_images"), int):
        return ""
    fresh = ", new images every epoch" if meta.get("fresh") else ""
    return f" ({meta['epochs']} epochs of {meta['num_images']:,} images{fresh})"


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "not recorded"


def _top1(row: dict[str, Any]) -> str:
    top1, std = row.get("top1"), row.get("std")
    if not isinstance(top1, (int, float)):
        return "-"
    return f"{top1:.2f} ± {std:.2f}" if isinstance(std, (int, float)) else f"{top1:.2f}"


__all__ = [
    "FORMATS",
    "ExportFormat",
    "Exported",
    "export_encoder",
    "formats_for",
    "model_card",
    "probe_results",
    "resnet_layout",
    "timm_model",
]

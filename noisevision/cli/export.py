"""`noisevision export`: an encoder's weights as safetensors for torchvision, timm or noisevision."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import app, console


@app.command()
def export(
    encoder: str = typer.Argument(..., help="Encoder file or training run folder."),
    fmt: str = typer.Option(..., "--format", help="{export-formats}."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="FILE.safetensors: the weights, and their model card beside them (README.md, or "
        "FILE.README.md when the folder has another README.md). A folder: a model folder as the Hub "
        "holds one (model.safetensors, README.md, and for timm config.json).",
    ),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="Then upload the model folder to the Hugging Face Hub as USER/NAME."
    ),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: a private repository."),
    license: str = typer.Option("mit", "--license", help="Licence in a model folder's card metadata."),
) -> None:
    """Write an encoder's weights as safetensors for torchvision, timm or noisevision, with a model card.

    torchvision and timm get the ResNet backbone (no projection head, no fc: load it into a model
    whose fc is nn.Identity(), as the card shows); noisevision keeps everything, and load_encoder
    and `noisevision eval` read the file back. `--format timm --out FOLDER` writes a timm model
    folder: `timm.create_model("local-dir:FOLDER", pretrained=True)`, and once pushed with
    `--push-to-hub USER/NAME`, `timm.create_model("hf-hub:USER/NAME", pretrained=True)`.
    """
    from noisevision.errors import NoisevisionError
    from noisevision.export import export_encoder
    from noisevision.hub import check_push
    from noisevision.hub import push_to_hub as push

    if push_to_hub is not None:
        check_push(out, push_to_hub)  # before anything is written
    elif private:
        raise NoisevisionError("--private is an option of --push-to-hub: give both, or neither")
    done = export_encoder(encoder, fmt, out, license=license, repo=push_to_hub)
    parts = sorted({k.split(".")[0] for k in done.dropped})  # e.g. "head", the projection head
    dropped = f"; left out: {', '.join(parts)}" if parts else ""
    config = f", {done.config.name}" if done.config else ""
    console.print(
        f"wrote {done.weights} ({done.format}, {done.tensors} tensors{dropped}){config} and its model card "
        f"{done.card}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if push_to_hub is not None and done.folder is not None:
        url = push(done.folder, push_to_hub, private)
        console.print(
            f"pushed {done.folder} to the Hub: {url}", markup=False, highlight=False, soft_wrap=True
        )

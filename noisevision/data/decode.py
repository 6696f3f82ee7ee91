"""Evaluation images from files, fast: decode small, then crop and resize on the device.

For every file a DataLoader worker reads the header and draws the view's crop box in the full
image's pixel coordinates (train: a random resized crop and a flip from the image's own seeded
generator; test: the centre crop of the resized image). What it hands on depends on the decoder:

- "draft":  PIL decodes the JPEG at the smallest of its 1, 1/2, 1/4, 1/8 scales ("draft" mode: an
            inverse DCT of fewer coefficients) that still leaves the crop box at least as many pixels
            as the output; other formats decode at full size;
- "device": the raw JPEG bytes, decoded by nvJPEG on the GPU (`torchvision.io.decode_jpeg`);
            files it cannot take (PNG, CMYK JPEG…) are decoded on the CPU as with "draft";
- "pil":    the plain path: a full-size decode and the whole per-image transform in the worker.

For "draft" and "device" on a GPU, the main process groups the batch by image size and crops and
resizes each group with one `roi_align` call on the device (adaptive sampling: bilinear when
enlarging, an area-like average when shrinking), then flips and normalises the whole batch at once.
On a CPU the workers crop each image the same way, leaving the cores of the main process to the
encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from noisevision.errors import FieldError, NoisevisionError, unknown_name

DECODERS = ("auto", "draft", "device", "pil")
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")


def check_decoder(name: str) -> None:
    """NoisevisionError (with the closest names) for an unknown decoder."""
    if name not in DECODERS:
        raise unknown_name("decoder", name, list(DECODERS))


def resolve_decoder(name: str, device: torch.device) -> str:
    """'auto' -> 'device' on CUDA, else 'draft'; 'device' needs CUDA."""
    check_decoder(name)
    if name == "auto":
        return "device" if device.type == "cuda" else "draft"
    if name == "device" and device.type != "cuda":
        raise FieldError("decoder", "{field} device decodes JPEGs on the GPU: use it with a CUDA device")
    return name


@dataclass(frozen=True)
class Crop:
    """Where one view comes from: a box (x0, y0, x1, y1 in pixel edges) of a (height, width) image."""

    box: tuple[float, float, float, float]
    flip: bool


def centre_crop(height: int, width: int, size: int, resize_to: int) -> Crop:
    """Resize the short side to `resize_to`, then the central size×size crop, as a box of the
    original image (the same rounding as resizing first)."""
    r = resize_to / min(height, width)
    h, w = max(size, round(height * r)), max(size, round(width * r))
    top, left = (h - size) // 2, (w - size) // 2
    sy, sx = height / h, width / w
    return Crop((left * sx, top * sy, (left + size) * sx, (top + size) * sy), False)


def draft_target(height: int, width: int, crop: Crop, size: int) -> tuple[int, int]:
    """The smallest (width, height) a decode may shrink the image to and still give the crop box at
    least `size` pixels across."""
    x0, y0, x1, y1 = crop.box
    fx = size / max(x1 - x0, 1e-6)
    fy = size / max(y1 - y0, 1e-6)
    f = min(1.0, max(fx, fy))
    return max(1, math.ceil(width * f)), max(1, math.ceil(height * f))


def scale_crop(crop: Crop, sx: float, sy: float) -> Crop:
    x0, y0, x1, y1 = crop.box
    return Crop((x0 * sx, y0 * sy, x1 * sx, y1 * sy), crop.flip)


def decode_small(
    path: str, crop_for: Callable[[int, int], Crop], size: int, keep_jpeg: bool = False
) -> tuple[Tensor, Crop, bool]:
    """Read `path`: (pixels uint8 [3, h, w] or, with keep_jpeg, the file's bytes uint8 [n];
    the crop in those pixels' coordinates; whether the tensor holds JPEG bytes)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
            crop = crop_for(height, width)
            if keep_jpeg and im.format == "JPEG" and im.mode in ("RGB", "L"):
                with open(path, "rb") as f:
                    data = np.frombuffer(f.read(), dtype=np.uint8)
                return torch.from_numpy(data.copy()), crop, True
            if im.format == "JPEG":
                im.draft("RGB", draft_target(height, width, crop, size))
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a bomb: too many pixels to decode
        raise NoisevisionError(f"cannot read image {path}: {exc}") from exc
    crop = scale_crop(crop, arr.shape[1] / width, arr.shape[0] / height)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1), crop, False


# ---------------------------------------------------------------------------------------- on the device
def crop_batch(images: Sequence[Tensor], crops: Sequence[Crop], size: int, device: torch.device) -> Tensor:
    """uint8 images [3, h_i, w_i] of any sizes (on any device) + their crops -> float [B, 3, size, size]
    in [0, 1] on `device`: one roi_align per distinct image size, then the flips."""
    from torchvision.ops import roi_align

    out = torch.empty(len(images), 3, size, size, device=device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape[-2:]), []).append(i)
    for members in groups.values():
        x = torch.stack([images[i] for i in members]).to(device, non_blocking=True).float().div_(255)
        boxes = torch.tensor([crops[i].box for i in members], dtype=torch.float32, device=device)
        rois = torch.cat([torch.arange(len(members), device=device, dtype=torch.float32)[:, None], boxes], 1)
        idx = torch.tensor(members, device=device)
        out[idx] = roi_align(x, rois, output_size=(size, size), sampling_ratio=-1, aligned=True)
    flip = torch.tensor([c.flip for c in crops], device=device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out).clamp_(0, 1)


def decode_on_device(items: Sequence[Tensor], is_jpeg: Sequence[bool], device: torch.device) -> list[Tensor]:
    """JPEG byte tensors decoded by nvJPEG on `device` (in one call), pixel tensors moved there."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out = [t for t in items]
    jpeg = [i for i, j in enumerate(is_jpeg) if j]
    if jpeg:
        try:
            decoded = decode_jpeg([items[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one file nvJPEG cannot take fails the call: decode one by one
            decoded = [_decode_one(items[i], device) for i in jpeg]
        for i, img in zip(jpeg, decoded):
            out[i] = img
    return [t.to(device, non_blocking=True) for t in out]


def _decode_one(data: Tensor, device: torch.device) -> Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return decode_jpeg(data, mode=ImageReadMode.RGB)  # libjpeg on the CPU


def normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


class FileCrops(torch.utils.data.Dataset):
    """Item i: (decoded pixels or JPEG bytes, crop, is-JPEG-bytes, label) of file i; with
    `crop_here`, (the cropped view float [3, size, size] in [0, 1], label) instead.

    Cropped here, a test view (`resize_to`: short side resized to it, then the centre) is resized
    with antialiased interpolation, which on a CPU is several times faster than roi_align's
    averaging over a large image (the same filter as the plain "pil" path).
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Tensor,
        crop_for: Callable[[int, int, int], Crop],
        size: int,
        keep_jpeg: bool = False,
        crop_here: bool = False,
        resize_to: int | None = None,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
    ):
        self.paths, self.labels, self.crop_for = paths, labels, crop_for
        self.size, self.keep_jpeg, self.crop_here, self.resize_to = size, keep_jpeg, crop_here, resize_to
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        keep = self.keep_jpeg and self.paths[i].lower().endswith(JPEG_SUFFIXES)
        data, crop, jpeg = decode_small(self.paths[i], lambda h, w: self.crop_for(i, h, w), self.size, keep)
        if not self.crop_here:
            return data, crop, jpeg, int(self.labels[i])
        if self.resize_to is not None:
            x = resize_centre(data, self.size, self.resize_to)
        else:
            x = crop_batch([data], [crop], self.size, torch.device("cpu"))[0]
        # normalised here, per image: a contiguous small tensor (the batch is only stacked)
        return normalise(x[None], self.mean, self.std)[0], int(self.labels[i])


def resize_centre(image: Tensor, size: int, resize_to: int) -> Tensor:
    """uint8 [3, H, W] -> float [3, size, size] in [0, 1]: short side resized to `resize_to`
    (antialiased bilinear), then the central size×size (the probes' test view)."""
    import torch.nn.functional as F

    x = image[None].float().div_(255)
    _, _, height, width = x.shape
    r = resize_to / min(height, width)
    shape = (max(size, round(height * r)), max(size, round(width * r)))
    if shape != (height, width):
        x = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=True)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp_(0, 1)


@dataclass
class Packed:
    """A batch of variable-size uint8 tensors in one buffer: one shared-memory transfer from a
    DataLoader worker instead of one per image."""

    flat: Tensor  # uint8 [sum of numels]
    shapes: list[tuple[int, ...]]

    @staticmethod
    def pack(tensors: Sequence[Tensor]) -> Packed:
        return Packed(torch.cat([t.reshape(-1) for t in tensors]), [tuple(t.shape) for t in tensors])

    def unpack(self) -> list[Tensor]:
        sizes = [math.prod(shape) for shape in self.shapes]
        return [part.view(shape) for part, shape in zip(self.flat.split(sizes), self.shapes)]


def _collate(items: list[tuple[Tensor, Crop, bool, int]]) -> tuple[Packed, list, list, Tensor]:
    data, crops, jpeg, labels = zip(*items)
    return Packed.pack(data), list(crops), list(jpeg), torch.tensor(labels)


def iterate_file_crops(
    paths: Sequence[str],
    labels: Tensor,
    crop_for: Callable[[int, int, int], Crop],
    size: int,
    batch_size: int,
    device: torch.device,
    decoder: str,
    workers: int,
    pin: bool = False,
    resize_to: int | None = None,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> Iterator[tuple[Tensor, Tensor]]:
    """(float [B, 3, size, size] on `device`, normalised by mean / std, labels [B] on `device`)
    over the files, in order.

    `crop_for(i, height, width)` gives file i's crop in its full-size pixel coordinates;
    `resize_to` marks a test view (see FileCrops). For a CPU device the workers crop too (the
    main process has its own work for the cores); for a GPU they hand on small decoded images or
    JPEG bytes, cropped there in batches.
    """
    on_cpu = device.type == "cpu"
    dataset = FileCrops(
        paths,
        labels,
        crop_for,
        size,
        keep_jpeg=decoder == "device",
        crop_here=on_cpu,
        resize_to=resize_to,
        mean=mean,
        std=std,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=None if on_cpu else _collate,
        pin_memory=pin,
        persistent_workers=False,
    )
    if on_cpu:
        yield from loader
        return
    for packed, crops, jpeg, y in loader:
        data = packed.unpack()
        images = decode_on_device(data, jpeg, device) if decoder == "device" else data
        yield normalise(crop_batch(images, crops, size, device), mean, std), y.to(device, non_blocking=True)

"""Dead leaves whose regions show textures: the texture bank (rendered once, kept in the on-disk
cache) and each shape's shifted, flipped view of one of its images."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from noisevision.cache import cache_dir, entry_name, is_cached, shared_tensors, source_hash
from noisevision.device import resolve_device
from noisevision.errors import NoisevisionError
from noisevision.generators.dead_leaves import paint_cpu
from noisevision.generators.dead_leaves.generator import DeadLeaves
from noisevision.generators.dead_leaves.layout import BLOCK
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng, mix64_int, name_hash

#: Texture-bank entries per cache file: the unit of work that processes split between them.
BANK_SHARD = 64


class DeadLeavesTextures(DeadLeaves):
    """Dead leaves whose regions show textures from a statistical image model.

    Each visible shape shows, at its own pixels, one image of a texture bank (`bank_size` images of
    the `texture` generator with seed `texture_seed`, rendered lazily and cached per resolution and
    device), circularly shifted and flipped/transposed by the shape's own random draws. The
    original code likewise drew textures from a finite pool of pre-rendered images.
    """

    portable = False  # its textures are statistical-model images, which are not
    search_space = (
        *DeadLeaves.search_space,
        Param("bank_size", "int", 16, 2048, log=True, help="distinct texture images the shapes show"),
    )

    def __init__(
        self,
        spec: GeneratorSpec,
        *,
        shapes: str = "oriented",
        texture: str = "stat-spectrum_color_wmm",
        bank_size: int = 512,
        texture_seed: int = 0,
        **params: Any,
    ):
        if bank_size < 1:
            raise NoisevisionError(f"bank_size must be at least 1, got {bank_size}")
        super().__init__(spec, shapes=shapes, **params)
        self.params.update(texture=texture, bank_size=bank_size, texture_seed=texture_seed)
        self.texture, self.bank_size, self.texture_seed = texture, int(bank_size), int(texture_seed)
        self._banks: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}
        self._texture_gen: Generator | None = None

    def draw_paint(self, r: Rng, res: int) -> Tensor:
        """Per-shape texture choice [r.batch, BLOCK, 4]: bank entry, row shift, column shift and a
        dihedral transform 0..7 (bit 0 transpose, bit 1 flip columns, bit 2 flip rows)."""
        entry = r.randint(0, self.bank_size, BLOCK, 1)
        shift = r.randint(0, res, BLOCK, 2)
        flip = r.randint(0, 8, BLOCK, 1)
        return torch.cat([entry, shift, flip], -1)

    def prepare(self, res: int | None = None, device: str | torch.device = "cpu") -> None:
        """Render the whole texture bank at this resolution (calls otherwise fill it lazily)."""
        dev = resolve_device(device)
        res = self.check_res(self.spec.default_res if res is None else res)
        self.bank(torch.arange(self.bank_size, device=dev), res, dev)

    def setup_note(self, res: int, device: str | torch.device = "cpu") -> str | None:
        dev, folder = resolve_device(device), cache_dir()
        if (res, str(dev)) in self._banks and bool(self._banks[res, str(dev)][1].all()):
            return None
        spans = self._shard_spans(range(0, self.bank_size, BANK_SHARD))
        if folder is not None and all(is_cached(self._shard_name(lo, hi, res, dev)) for lo, hi in spans):
            return None
        kept = f", kept in {folder} for later runs" if folder is not None else ""
        return f"first renders its texture bank: {self.bank_size} {self.texture} images at {res} px{kept}"

    def _bank_seed(self) -> int:
        return mix64_int(name_hash("dead_leaves texture bank") ^ self.texture_seed) & 0x7FFFFFFF

    def _texture(self) -> Generator:
        if self._texture_gen is None:
            from noisevision.generators.registry import get

            self._texture_gen = get(self.texture)
        return self._texture_gen

    def _shard_spans(self, starts: Iterable[int]) -> list[tuple[int, int]]:
        """Bank entries lo .. hi-1 of the shards starting at `starts`."""
        return [(lo, min(lo + BANK_SHARD, self.bank_size)) for lo in starts]

    def _shard_name(self, lo: int, hi: int, res: int, device: torch.device) -> str:
        """Cache entry of bank entries lo..hi-1 (the texture's bytes may differ between devices)."""
        label = f"{self.texture}-{res}px-{device.type}-{lo}-{hi}"
        return entry_name(label, self._bank_seed(), source_hash(self._texture()))

    def bank(self, entries: Tensor, res: int, device: torch.device) -> Tensor:
        """The texture bank uint8 [bank_size, 3, res, res], with at least `entries` rendered.

        The bank is built in shards of `BANK_SHARD` entries through the on-disk cache, so that the
        processes of one job split it and later runs read it (cache.py)."""
        key = (res, str(device))
        if key not in self._banks:
            bank = torch.zeros(self.bank_size, 3, res, res, dtype=torch.uint8, device=device)
            self._banks[key] = (bank, torch.zeros(self.bank_size, dtype=torch.bool, device=device))
        bank, ready = self._banks[key]
        missing = entries[~ready[entries]]
        if not missing.numel():
            return bank
        seed = self._bank_seed()
        spans = self._shard_spans(torch.unique(missing // BANK_SHARD).mul(BANK_SHARD).tolist())
        names = [self._shard_name(lo, hi, res, device) for lo, hi in spans]

        def render(k: int) -> Tensor:
            lo, hi = spans[k]
            return self._texture()(torch.arange(lo, hi, device=device), res, seed=seed, device=device)

        for k, shard in shared_tensors(names, render):
            lo, hi = spans[k]
            if shard.shape != (hi - lo, 3, res, res) or shard.dtype != torch.uint8:
                shard = render(k)  # (a foreign file under our name: never trust it)
            bank[lo:hi] = shard.to(device)
            ready[lo:hi] = True
        return bank

    def render(self, rng: Rng, res: int) -> Tensor:
        if rng.device.type != "cpu":
            return self.render_tensors(rng, res)
        visible, n_stop = self.layout(rng, res, compact=True)  # the same pixels in compiled passes
        choice = self.gather_paint(rng, n_stop, res)
        bank = self.bank(paint_cpu.texture_entries(visible, choice, self.bank_size), res, rng.device)
        return paint_cpu.paint_textured(visible, choice, bank, _dihedral_table(res, rng.device))

    def render_tensors(self, rng: Rng, res: int) -> Tensor:
        """`render` as tensor code (a GPU's way)."""
        visible, n_stop = self.layout(rng, res)  # [B, res, res], [B]
        choice = self.gather_paint(rng, n_stop, res)  # [B, n, 4]
        b, dev = visible.shape[0], visible.device
        shown = visible.reshape(b, -1).clamp(min=0)  # [B, res²]
        entry, sy, sx, flip = (torch.gather(choice[..., i], 1, shown) for i in range(4))
        needed = torch.zeros(self.bank_size, dtype=torch.bool, device=dev)
        needed.index_fill_(0, entry.reshape(-1), True)
        bank = self.bank(torch.nonzero(needed).squeeze(1), res, dev)
        # Source pixel: the dihedral transform of (y, x), then the circular shift.
        moved = _dihedral_table(res, dev).reshape(-1)[flip * res**2 + torch.arange(res**2, device=dev)]
        y = torch.remainder(torch.div(moved, res, rounding_mode="floor") + sy, res)
        x = torch.remainder(moved % res + sx, res)
        src = entry * (3 * res**2) + y * res + x  # [B, res²] flat index of channel 0 in the bank
        channel = torch.arange(3, device=dev).reshape(1, 3, 1) * res**2
        img = bank.reshape(-1)[src[:, None, :] + channel]  # [B, 3, res²]
        if n_stop.max() >= self.max_shapes:  # (host sync) black where the cap left pixels bare
            img = img.where(visible.reshape(b, 1, -1) >= 0, 0)
        return img.reshape(b, 3, res, res)


def _dihedral_table(res: int, device: torch.device) -> Tensor:
    """int64 [8, res²]: flat position y'·res + x' that pixel y·res + x reads under transform d
    (bit 0: transpose, bit 1: flip columns, bit 2: flip rows, applied in that order)."""
    y, x = torch.meshgrid(torch.arange(res, device=device), torch.arange(res, device=device), indexing="ij")
    out = []
    for d in range(8):
        ty, tx = (x, y) if d & 1 else (y, x)
        tx = res - 1 - tx if d & 2 else tx
        ty = res - 1 - ty if d & 4 else ty
        out.append((ty * res + tx).reshape(-1))
    return torch.stack(out)


register(
    "dead_leaves-textures",
    family="dead leaves",
    label="Dead leaves – Textures",
    description="Rotated-square dead leaves whose regions show Spectrum+Color+WMM textures.",
    shapes="oriented",
)(DeadLeavesTextures)

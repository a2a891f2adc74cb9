"""Paired restoration datasets: folders, GoPro, ``.npz`` patches, in-memory pairs.

Every dataset yields dicts ``{"lq": (3, h, w) float32, "gt": (3, H, W) float32,
"name": str}`` with values in [0, 1] and ``(H, W) = scale * (h, w)``.

Random crops and augmentations
------------------------------
``patch_size`` is the **gt** patch side (BasicSR's ``gt_size``); it must be a
multiple of ``scale``. The lq crop has side ``patch_size / scale`` and starts
at ``(top, left)``; the gt crop starts at ``scale * (top, left)``, so the pair
stays aligned.

The randomness of item ``index`` in epoch ``epoch`` comes only from
``numpy.random.SeedSequence([seed, epoch, index])``: the crop position from a
``numpy`` generator and the augmentation from a ``torch.Generator`` both seeded
by it. Items therefore never depend on the global RNG state, on the number of
data-loader workers or on the order in which items are read. Call
:meth:`PairedDataset.set_epoch` at the start of every epoch to draw new crops.

Errors
------
Bad data raise subclasses of ``ValueError`` whose message names the file(s)
and the problem: :class:`MissingPairError`, :class:`PairSizeError`,
:class:`EmptyDatasetError`, :class:`PatchSizeError`, :class:`NpzFormatError`,
and :class:`restore_lib.data.io.ImageReadError` from :func:`read_image`
(corrupt file, grayscale with ``gray="error"``, transparent RGBA, ...).
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..utils import atomic_path, resolve_data_root
from .io import IMAGE_EXTENSIONS, ImageReadError, read_image, to_tensor
from .manifest import check_data_folder

__all__ = [
    "DatasetError", "MissingPairError", "PairSizeError", "EmptyDatasetError", "PatchSizeError",
    "NpzFormatError", "PairedDataset", "PairedFolderDataset", "GoProDataset", "NpzPatchDataset",
    "MemoryPairs", "save_npz_patches", "hw4_clean_name", "HW4_NAME_MAP", "list_images",
    "pair_files", "item_generators",
]


# --------------------------------------------------------------------------- errors

class DatasetError(ValueError):
    """Base class of dataset errors; the message names the file(s)."""


class MissingPairError(DatasetError):
    """A degraded image without its clean image, or the reverse."""


class PairSizeError(DatasetError):
    """Paired images whose sizes do not agree with ``scale``."""


class EmptyDatasetError(DatasetError):
    """A folder or file without any usable image."""


class PatchSizeError(DatasetError):
    """A patch size that does not fit an image (or is not a multiple of ``scale``)."""


class NpzFormatError(DatasetError):
    """A ``.npz`` patch file whose arrays do not follow the documented format."""


# --------------------------------------------------------------------------- file pairing

_HW4_PATTERN = re.compile(r"^(rain|snow)-(\d+)(\.[A-Za-z]+)$")


def hw4_clean_name(name: str) -> str:
    """Course HW4 naming: ``rain-N.png -> rain_clean-N.png``, ``snow-N.png -> snow_clean-N.png``."""
    m = _HW4_PATTERN.match(name)
    if m is None:
        raise MissingPairError(f"{name}: does not follow the HW4 naming '(rain|snow)-<N>.png'")
    kind, num, ext = m.groups()
    return f"{kind}_clean-{num}{ext}"


#: ready ``name_map`` for the course HW4 layout ``train/{degraded,clean}``.
HW4_NAME_MAP = hw4_clean_name


def _natural_key(name: str):
    """Sort key that orders ``rain-2`` before ``rain-10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image file names in ``folder`` (no recursion, hidden files skipped), naturally sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmptyDatasetError(f"{folder}: folder not found")
    names = []
    for p in folder.iterdir():
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not p.is_file():   # a broken or looping link, or a folder named like an image: never drop it silently
            what = "a broken or looping symbolic link" if p.is_symlink() else "not a file"
            raise DatasetError(f"{p}: {what}; fix or remove it")
        names.append(p.name)
    return sorted(names, key=_natural_key)


def _few(names: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


def _map_name(name_map, name: str) -> str:
    if name_map is None:
        return name
    if isinstance(name_map, Mapping):
        return name_map.get(name, name)
    return name_map(name)


def pair_files(lq_dir, gt_dir, name_map: Callable[[str], str] | Mapping[str, str] | None = None,
               files: Iterable[str] | None = None) -> list[tuple[str, Path, Path]]:
    """Match degraded and clean images by file name.

    Args:
        lq_dir, gt_dir: folders of degraded and clean images.
        name_map: degraded file name -> clean file name (a callable, or a dict
            whose missing keys keep their own name); default: same name.
        files: restrict to these degraded file names (e.g. a train/val split);
            clean images outside the selection are then allowed.

    Returns:
        ``[(name, lq_path, gt_path), ...]`` in natural order of the degraded names.
    """
    lq_dir, gt_dir = Path(lq_dir), Path(gt_dir)
    lq_names = list_images(lq_dir)
    gt_names = set(list_images(gt_dir))
    if files is not None:
        wanted = list(files)
        missing = [n for n in wanted if n not in set(lq_names)]
        if missing:
            raise MissingPairError(f"{lq_dir}: selected files not found: {_few(missing)}")
        lq_names = wanted
    if not lq_names:
        raise EmptyDatasetError(f"{lq_dir}: no images ({'/'.join(IMAGE_EXTENSIONS)})")
    pairs, no_gt = [], []
    for n in lq_names:
        g = _map_name(name_map, n)
        if g in gt_names:
            pairs.append((n, lq_dir / n, gt_dir / g))
        else:
            no_gt.append(f"{n} (expected {g})" if g != n else n)
    if no_gt:
        raise MissingPairError(f"{lq_dir}: {len(no_gt)} degraded image(s) without a clean pair in {gt_dir}: "
                               f"{_few(no_gt)}")
    if files is None:
        no_lq = sorted(gt_names - {p[2].name for p in pairs}, key=_natural_key)
        if no_lq:
            raise MissingPairError(f"{gt_dir}: {len(no_lq)} clean image(s) without a degraded pair in {lq_dir}: "
                                   f"{_few(no_lq)}")
    return pairs


def _image_hw(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: too many pixels to decode safely ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: corrupt or unreadable image ({e})") from e
    return h, w


# --------------------------------------------------------------------------- shared item logic

def item_generators(seed: int, epoch: int, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Numpy and torch generators that depend only on ``(seed, epoch, index)``."""
    ss = np.random.SeedSequence([seed, epoch, index])
    torch_seed = int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(ss), torch.Generator().manual_seed(torch_seed)


def _as_hw(v, name: str) -> tuple[int, int] | None:
    if v is None:
        return None
    v = (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)
    if len(v) != 2 or min(v) < 1:
        raise PatchSizeError(f"{name} must be a positive int or (h, w), got {v}")
    return v


def _compact(img: np.ndarray) -> np.ndarray:
    """Keep a float image as uint8 when that is lossless (8-bit files): 4x less memory."""
    if img.dtype != np.float32:
        return img
    u8 = np.round(img * 255.0).astype(np.uint8)
    return u8 if np.array_equal(u8.astype(np.float32) / 255.0, img) else img


class PairedDataset(torch.utils.data.Dataset):
    """Base class: size checks, aligned random crops, augmentation, determinism.

    Subclasses fill ``self._items`` with one record per pair and implement
    ``_arrays(index) -> (lq HWC, gt HWC)`` and ``_where(index) -> str``.
    """

    def __init__(self, *, scale: int = 1, patch_size=None, augment=None, seed: int = 0, modcrop: bool = False):
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.scale, self.seed, self.modcrop = int(scale), int(seed), bool(modcrop)
        self.patch_size = _as_hw(patch_size, "patch_size")
        if self.patch_size and (self.patch_size[0] % self.scale or self.patch_size[1] % self.scale):
            raise PatchSizeError(f"patch_size {self.patch_size} (gt pixels) is not a multiple of scale={self.scale}")
        if augment is not None and getattr(augment, "scale", self.scale) != self.scale:
            raise ValueError(f"augment.scale={augment.scale} differs from the dataset scale={self.scale}")
        self.augment = augment
        self.epoch = 0
        self._items: list = []

    # -- to implement
    def _arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _where(self, index: int) -> str:
        raise NotImplementedError

    def _name(self, index: int) -> str:
        raise NotImplementedError

    # -- shared
    def set_epoch(self, epoch: int) -> None:
        """Select the crops/augmentations of ``epoch`` (call once per epoch)."""
        if int(epoch) != epoch or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._items)

    def _check_sizes(self, where: str, lq_hw, gt_hw) -> tuple[int, int]:
        """Validate a pair's sizes; return the gt size to use (after mod-crop)."""
        s = self.scale
        want = (lq_hw[0] * s, lq_hw[1] * s)
        if tuple(gt_hw) != want:
            fits = all(w <= g < w + s for w, g in zip(want, gt_hw))
            if not (self.modcrop and fits):
                hint = " (pass modcrop=True to crop the clean image to a multiple of scale)" if fits else ""
                raise PairSizeError(f"{where}: degraded {lq_hw[0]}x{lq_hw[1]} and clean {gt_hw[0]}x{gt_hw[1]} "
                                    f"do not match for scale={s} (expected clean {want[0]}x{want[1]}){hint}")
        if self.patch_size and (self.patch_size[0] > want[0] or self.patch_size[1] > want[1]):
            raise PatchSizeError(f"{where}: patch_size {self.patch_size} is larger than the clean image "
                                 f"{want[0]}x{want[1]}")
        return want

    def _crop(self, lq: np.ndarray, gt: np.ndarray, rng: np.random.Generator):
        """Mod-crop gt to scale x lq, then take the aligned random patch."""
        s = self.scale
        h, w = lq.shape[:2]
        gt = gt[:h * s, :w * s]
        if self.patch_size is None:
            return lq, gt
        ph, pw = self.patch_size[0] // s, self.patch_size[1] // s
        top = int(rng.integers(0, h - ph + 1))
        left = int(rng.integers(0, w - pw + 1))
        return lq[top:top + ph, left:left + pw], gt[top * s:(top + ph) * s, left * s:(left + pw) * s]

    def __getitem__(self, index: int) -> dict:
        index = range(len(self))[index]  # IndexError for out-of-range, supports negatives
        lq, gt = self._arrays(index)
        self._check_sizes(self._where(index), lq.shape[:2], gt.shape[:2])
        np_rng, torch_rng = item_generators(self.seed, self.epoch, index)
        lq, gt = self._crop(lq, gt, np_rng)
        lq_t, gt_t = to_tensor(lq), to_tensor(gt)
        if self.augment is not None:
            lq_t, gt_t = self.augment(lq_t, gt_t, torch_rng)
            lq_t, gt_t = lq_t.contiguous(), gt_t.contiguous()
        return {"lq": lq_t, "gt": gt_t, "name": self._name(index)}


# --------------------------------------------------------------------------- image folders

class PairedFolderDataset(PairedDataset):
    """Pairs ``<root>/<degraded_dir>/<name>`` with ``<root>/<clean_dir>/<name>``.

    Works for the embedded dataset (``<root>/<task>/<split>``, folders
    ``degraded``/``clean``), Restormer-style ``input``/``target`` folders and the
    course HW4 layout (``name_map=HW4_NAME_MAP``).

    ``root`` is a data root: absolute or relative to the repository root
    (:func:`restore_lib.utils.resolve_data_root`), checked against the
    ``MANIFEST.json`` of its prepared folder (``root`` or its parent) by
    :func:`restore_lib.data.manifest.check_data_folder` unless ``verify=False``
    (a folder without one is read with a warning).

    Args:
        root: folder that holds the two image folders.
        degraded_dir, clean_dir: their names (or absolute paths).
        scale: gt/lq size ratio (4 for x4 SR).
        patch_size: gt patch side for random aligned crops; None = whole images.
        augment: callable ``(lq, gt, torch.Generator) -> (lq, gt)``, e.g. PairedAugment.
        seed: base seed of the crops/augmentations.
        name_map: degraded name -> clean name (callable or dict).
        in_memory: read every image once at construction (stored as uint8 when
            lossless); otherwise read on access (sizes are still checked upfront
            from the file headers).
        files: restrict to these degraded file names.
        modcrop: crop a clean image that is not exactly ``scale`` x the degraded
            one down to that size (otherwise :class:`PairSizeError`).
        gray, alpha: passed to :func:`read_image`.
        verify: check the folder's manifest (False: the caller already did).
    """

    def __init__(self, root, degraded_dir: str = "degraded", clean_dir: str = "clean", *, scale: int = 1,
                 patch_size=None, augment=None, seed: int = 0, name_map=None, in_memory: bool = True,
                 files: Iterable[str] | None = None, modcrop: bool = False, gray: str = "rgb",
                 alpha: str = "error", verify: bool = True):
        super().__init__(scale=scale, patch_size=patch_size, augment=augment, seed=seed, modcrop=modcrop)
        self.root = resolve_data_root(root)
        if verify:
            check_data_folder(self.root, what="paired image", levels=1)
        pairs = pair_files(self.root / degraded_dir, self.root / clean_dir, name_map, files)
        self._init_pairs(pairs, in_memory, gray, alpha)

    def _init_pairs(self, pairs: list[tuple[str, Path, Path]], in_memory: bool, gray: str, alpha: str) -> None:
        self.in_memory, self._read_kw = bool(in_memory), {"gray": gray, "alpha": alpha}
        self.pairs = pairs
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = [] if self.in_memory else None
        for i, (_, lq_path, gt_path) in enumerate(pairs):
            if self.in_memory:
                lq, gt = (_compact(read_image(p, **self._read_kw)) for p in (lq_path, gt_path))
                self._cache.append((lq, gt))
                lq_hw, gt_hw = lq.shape[:2], gt.shape[:2]
            else:
                lq_hw, gt_hw = _image_hw(lq_path), _image_hw(gt_path)
            self._check_sizes(f"{lq_path} / {gt_path}", lq_hw, gt_hw)
        self._items = pairs

    def _arrays(self, index):
        if self._cache is not None:
            return self._cache[index]
        _, lq_path, gt_path = self.pairs[index]
        return read_image(lq_path, **self._read_kw), read_image(gt_path, **self._read_kw)

    def _where(self, index):
        _, lq_path, gt_path = self.pairs[index]
        return f"{lq_path} / {gt_path}"

    def _name(self, index):
        return self.pairs[index][0]


class GoProDataset(PairedFolderDataset):
    """GoPro (``GOPRO_Large``): ``<root>/<split>/<scene>/{blur,sharp}/*.png``.

    Uses the benchmark ``blur`` folder (plain frame average); ``blur_gamma`` is
    ignored. Names are ``<scene>/<file>``. ``files`` (if given) lists such
    names. Images are read on access by default (2,103 training pairs of
    1280x720 would need ~11.6 GB in memory as uint8).

    ``root`` is a data root (absolute or relative to the repository root). A
    folder made by ``data_scripts/prepare_gopro.py`` must match its
    ``MANIFEST.json``; an unfinished preparation is refused and a raw
    ``GOPRO_Large`` folder is read with a warning
    (:func:`restore_lib.data.manifest.check_data_folder`).
    """

    def __init__(self, root, split: str = "train", *, blur_dir: str = "blur", sharp_dir: str = "sharp",
                 scale: int = 1, patch_size=None, augment=None, seed: int = 0, in_memory: bool = False,
                 files: Iterable[str] | None = None, gray: str = "rgb", alpha: str = "error"):
        PairedDataset.__init__(self, scale=scale, patch_size=patch_size, augment=augment, seed=seed)
        if split not in ("train", "test"):
            raise ValueError(f"GoProDataset: split must be 'train' or 'test', got {split!r}")
        self.root = resolve_data_root(root)
        check_data_folder(self.root, script="prepare_gopro", what="GoPro")
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise EmptyDatasetError(f"{split_dir}: GoPro split folder not found")
        scenes = sorted((d for d in split_dir.iterdir() if d.is_dir() and (d / blur_dir).is_dir()),
                        key=lambda d: _natural_key(d.name))
        if not scenes:
            raise EmptyDatasetError(f"{split_dir}: no '<scene>/{blur_dir}' folders")
        pairs = [(f"{scene.name}/{n}", lq, gt)
                 for scene in scenes for n, lq, gt in pair_files(scene / blur_dir, scene / sharp_dir)]
        if files is not None:
            by_name = {p[0]: p for p in pairs}
            wanted = list(files)
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise MissingPairError(f"{split_dir}: selected files not found: {_few(missing)}")
            pairs = [by_name[n] for n in wanted]
        self._init_pairs(pairs, in_memory, gray, alpha)


# --------------------------------------------------------------------------- in-memory pairs

def _check_array(arr, where: str) -> np.ndarray:
    """An image as HWC (uint8 or float32 in [0, 1]); tensors are taken as CHW."""
    if isinstance(arr, torch.Tensor):
        if arr.dim() != 3 or arr.shape[0] != 3:
            raise DatasetError(f"{where}: tensor images must be (3, H, W), got {tuple(arr.shape)}")
        arr = arr.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(arr, np.ndarray):
        raise DatasetError(f"{where}: expected a numpy array or tensor, got {type(arr).__name__}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DatasetError(f"{where}: arrays must be (H, W, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind != "f":
        raise DatasetError(f"{where}: dtype {arr.dtype} not supported (uint8 or float in [0, 1])")
    arr = arr.astype(np.float32, copy=False)
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise DatasetError(f"{where}: float values must be finite and in [0, 1] "
                           f"(min {np.nanmin(arr):.4g}, max {np.nanmax(arr):.4g})")
    return arr


class MemoryPairs(PairedDataset):
    """The dataset interface over ``[(name, lq, gt), ...]`` held in memory.

    ``lq``/``gt``: numpy ``(H, W, 3)`` uint8 or float in [0, 1], or torch
    ``(3, H, W)`` tensors. Same crop/augment/determinism options as
    :class:`PairedFolderDataset`.
    """

    def __init__(self, pairs: Sequence[tuple[str, object, object]], *, scale: int = 1, patch_size=None,
                 augment=None, seed: int = 0, modcrop: bool = False):
        super().__init__(scale=scale, patch_size=patch_size, augment=augment, seed=seed, modcrop=modcrop)
        items = []
        for i, pair in enumerate(pairs):
            if len(pair) != 3 or not isinstance(pair[0], str):
                raise DatasetError(f"MemoryPairs item {i}: expected (name: str, lq, gt), got {type(pair).__name__}")
            name, lq, gt = pair
            lq, gt = _compact(_check_array(lq, f"{name} (lq)")), _compact(_check_array(gt, f"{name} (gt)"))
            self._check_sizes(name, lq.shape[:2], gt.shape[:2])
            items.append((name, lq, gt))
        if not items:
            raise EmptyDatasetError("MemoryPairs: no pairs given")
        self._items = items

    def _arrays(self, index):
        return self._items[index][1], self._items[index][2]

    def _where(self, index):
        return self._items[index][0]

    def _name(self, index):
        return self._items[index][0]


# --------------------------------------------------------------------------- .npz patches

NPZ_FORMAT = """\
.npz patch format: arrays 'lq' (N, h, w, 3) and 'gt' (N, H, W, 3), NHWC, RGB,
same dtype, uint8 [0, 255] or float16/float32/float64 in [0, 1];
(H, W) = scale * (h, w) with one integer scale for both axes."""


def _validate_npz_arrays(lq: np.ndarray, gt: np.ndarray, where: str) -> int:
    """Check the documented format; return the scale."""
    for key, a in (("lq", lq), ("gt", gt)):
        if a.ndim != 4:
            raise NpzFormatError(f"{where}: '{key}' must be 4-D (N, H, W, 3), got shape {a.shape}")
        if a.shape[-1] != 3:
            hint = " (looks like NCHW; transpose to NHWC)" if a.shape[1] == 3 else ""
            raise NpzFormatError(f"{where}: '{key}' must be NHWC with 3 channels, got shape {a.shape}{hint}")
        if not (a.dtype == np.uint8 or a.dtype in (np.float16, np.float32, np.float64)):
            raise NpzFormatError(f"{where}: '{key}' has dtype {a.dtype}; expected uint8 or float")
        if a.dtype != np.uint8 and a.size:
            lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
            if not np.isfinite(a).all() or lo < 0.0 or hi > 1.0:
                raise NpzFormatError(f"{where}: '{key}' float values must be finite and in [0, 1] "
                                     f"(min {lo:.4g}, max {hi:.4g})")
    if lq.dtype != gt.dtype:
        raise NpzFormatError(f"{where}: 'lq' ({lq.dtype}) and 'gt' ({gt.dtype}) must have the same dtype")
    if lq.shape[0] != gt.shape[0]:
        raise NpzFormatError(f"{where}: {lq.shape[0]} 'lq' patches but {gt.shape[0]} 'gt' patches")
    if lq.shape[0] == 0:
        raise EmptyDatasetError(f"{where}: no patches")
    (h, w), (H, W) = lq.shape[1:3], gt.shape[1:3]
    if H % h or W % w or H // h != W // w:
        raise NpzFormatError(f"{where}: gt patches {H}x{W} are not an integer multiple of lq patches {h}x{w}")
    return H // h


def save_npz_patches(path: str | os.PathLike, lq, gt, *, compress: bool = False) -> Path:
    """Write patches in the documented ``.npz`` format, atomically.

    ``lq``/``gt``: numpy arrays or tensors, NHWC (see ``NPZ_FORMAT``).
    """
    path = Path(path)
    lq, gt = (a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a) for a in (lq, gt))
    _validate_npz_arrays(lq, gt, str(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, lq=lq, gt=gt)
    return path


class NpzPatchDataset(PairedDataset):
    """Pre-extracted patches from a ``.npz`` file (format: ``NPZ_FORMAT``).

    The scale is inferred from the patch sizes. ``patch_size`` (optional)
    crops smaller random patches; ``augment``/``seed`` as for the other datasets.
    Items are named ``<file stem>_<index>``.
    """

    def __init__(self, path: str | os.PathLike, *, patch_size=None, augment=None, seed: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise NpzFormatError(f"{self.path}: file not found")
        unreadable = (zipfile.BadZipFile, OSError, EOFError, ValueError)
        try:
            z = np.load(self.path, allow_pickle=False)
        except unreadable as e:
            raise NpzFormatError(f"{self.path}: corrupt or unreadable .npz ({e})") from e
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise NpzFormatError(f"{self.path}: a single .npy array, not an .npz archive with 'lq' and 'gt'")
        try:
            with z:
                keys = sorted(z.files)
                arrays = {k: z[k] for k in ("lq", "gt") if k in keys}
        except unreadable as e:
            raise NpzFormatError(f"{self.path}: corrupt or unreadable .npz ({e})") from e
        if len(arrays) != 2:
            raise NpzFormatError(f"{self.path}: needs arrays 'lq' and 'gt'; found {keys}")
        lq, gt = arrays["lq"], arrays["gt"]
        scale = _validate_npz_arrays(lq, gt, str(self.path))
        if lq.dtype != np.uint8:
            lq, gt = lq.astype(np.float32, copy=False), gt.astype(np.float32, copy=False)
        super().__init__(scale=scale, patch_size=patch_size, augment=augment, seed=seed)
        self._check_sizes(str(self.path), lq.shape[1:3], gt.shape[1:3])
        self.lq, self.gt = lq, gt
        self._items = list(range(lq.shape[0]))

    def _arrays(self, index):
        return self.lq[index], self.gt[index]

    def _where(self, index):
        return f"{self.path} [patch {index}]"

    def _name(self, index):
        return f"{self.path.stem}_{index:06d}"

"""Image folders for the all-in-one rain/snow notebook: unpaired test folders
and typed (rain / snow) pairs from the course HW4 layout.

Unpaired folders
----------------
A competition test set has degraded images only (HW4: ``test/degraded/0.png``
... ``99.png``, the degradation type hidden). :class:`ImageFolder` yields
``{"lq": (3, H, W) float32 in [0, 1], "name": file name}`` for every image of
a folder, naturally sorted (``2.png`` before ``10.png``), and
:func:`load_images` returns ``[(name, (H, W, 3) array)]`` for the notebooks.

Typed pairs
-----------
All-in-one training mixes degradation types; evaluation is per type. The type
of an HW4 image is the prefix of its file name (``rain-12.png`` -> ``rain``).
:func:`load_typed_pairs` reads one split of a folder in either of the two
layouts that exist for HW4:

* **raw** (the course archive): ``<root>/train/degraded/rain-N.png`` paired
  with ``<root>/train/clean/rain_clean-N.png`` (``HW4_NAME_MAP``); there is no
  validation folder, so :func:`split_by_image` makes one;
* **prepared** (``data_scripts/prepare_hw4.py --out``): ``<root>/<split>/
  {degraded,clean}/rain-N.png`` with the same file name on both sides, splits
  ``train``, ``val`` and ``test`` (test without ``clean``).

:func:`load_all_in_one` puts it together for notebook 01: the embedded
``rain_light``/``rain_heavy``/``snow`` tasks by default, or an HW4 folder, as
typed train/val/evaluation splits plus the unlabelled images to submit.

Pairs are returned as ``(type, name, degraded, clean)`` with uint8 ``(H, W, 3)``
arrays when the files are 8-bit (4x less memory than float32; every consumer
in ``restore_lib`` accepts both).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .datasets import (EmptyDatasetError, HW4_NAME_MAP, MissingPairError, _compact, list_images,
                       pair_files)
from ..utils import resolve_data_root
from .io import read_image, to_tensor
from .manifest import check_data_folder
from .pairs import load_pairs

__all__ = ["ImageFolder", "load_images", "degradation_type", "load_typed_pairs", "split_by_image",
           "has_clean", "HW4_TYPES", "UnknownTypeError", "AllInOneData", "load_all_in_one", "EMBEDDED_RAIN_SNOW"]

#: degradation types of the course HW4 data, as file-name prefixes
HW4_TYPES = ("rain", "snow")
_PREFIX = re.compile(r"^([A-Za-z]+)[-_]")


class UnknownTypeError(ValueError):
    """A file name whose prefix is not one of the expected degradation types."""


class ImageFolder(torch.utils.data.Dataset):
    """Every image of ``folder`` (no recursion, hidden files skipped), unpaired.

    Items: ``{"lq": (3, H, W) float32 in [0, 1], "name": str}``. Images are
    read on access (``in_memory=False``) or once at construction.
    """

    def __init__(self, folder: str | os.PathLike, *, in_memory: bool = False, gray: str = "rgb",
                 alpha: str = "error"):
        self.folder = Path(folder)
        self.names = list_images(self.folder)
        if not self.names:
            raise EmptyDatasetError(f"{self.folder}: no images")
        self._read_kw = {"gray": gray, "alpha": alpha}
        self._cache = [_compact(read_image(self.folder / n, **self._read_kw)) for n in self.names] \
            if in_memory else None

    def __len__(self) -> int:
        return len(self.names)

    def array(self, index: int) -> np.ndarray:
        """The ``(H, W, 3)`` image (uint8 if lossless, else float32)."""
        index = range(len(self))[index]
        if self._cache is not None:
            return self._cache[index]
        return _compact(read_image(self.folder / self.names[index], **self._read_kw))

    def __getitem__(self, index: int) -> dict:
        index = range(len(self))[index]
        return {"lq": to_tensor(self.array(index)), "name": self.names[index]}


def load_images(folder: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """``[(file name, (H, W, 3) array)]`` for every image of ``folder``."""
    ds = ImageFolder(folder)
    return [(ds.names[i], ds.array(i)) for i in range(len(ds))]


def degradation_type(name: str, types: Sequence[str] = HW4_TYPES) -> str:
    """The degradation type of a file name: its letters before the first ``-``
    or ``_`` (``"rain-12.png"`` -> ``"rain"``, ``"snow_clean-3.png"`` -> ``"snow"``)."""
    m = _PREFIX.match(Path(name).name)
    if m is None or m.group(1).lower() not in types:
        raise UnknownTypeError(f"{name}: cannot tell the degradation type from the file name "
                               f"(expected a prefix {' / '.join(f'{t}-' for t in types)})")
    return m.group(1).lower()


def has_clean(data_root: str | os.PathLike, split: str) -> bool:
    """True when ``<data_root>/<split>/clean`` exists (test sets have none)."""
    return (resolve_data_root(data_root) / split / "clean").is_dir()


def _name_map(clean_dir: Path):
    """HW4's ``rain_clean-N`` naming when the clean folder uses it, else same names."""
    names = list_images(clean_dir)
    return HW4_NAME_MAP if any("_clean-" in n for n in names) else None


def load_typed_pairs(data_root: str | os.PathLike, split: str, *, types: Sequence[str] = HW4_TYPES,
                     files: Sequence[str] | None = None) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``[(type, name, degraded, clean)]`` for ``<data_root>/<split>/{degraded,clean}``.

    Works with the raw HW4 layout (clean files named ``<type>_clean-N.png``)
    and the prepared one (same names). ``files`` restricts to these degraded
    file names. The type comes from each file name's prefix; a file whose
    prefix is not in ``types`` is an error naming it. ``data_root`` is
    absolute or relative to the repository root; a prepared folder must match
    its ``MANIFEST.json`` (see :func:`restore_lib.data.manifest.check_data_folder`).
    """
    data_root = resolve_data_root(data_root)
    check_data_folder(data_root, script="prepare_hw4", what="HW4")
    root = data_root / split
    lq_dir, gt_dir = root / "degraded", root / "clean"
    if not lq_dir.is_dir():
        raise EmptyDatasetError(f"{lq_dir}: folder not found (expected <data_root>/{split}/degraded)")
    if not gt_dir.is_dir():
        raise MissingPairError(f"{gt_dir}: folder not found; '{split}' has no clean images (a test split?)")
    out = []
    for name, lq_path, gt_path in pair_files(lq_dir, gt_dir, _name_map(gt_dir), files):
        kind = degradation_type(name, types)
        lq, gt = (_compact(read_image(p)) for p in (lq_path, gt_path))
        if lq.shape != gt.shape:
            raise MissingPairError(f"{lq_path} / {gt_path}: sizes differ ({lq.shape[:2]} vs {gt.shape[:2]})")
        out.append((kind, name, lq, gt))
    return out


def split_by_image(names: Sequence[str], val_ratio: float, seed: int = 0, *,
                   types: Sequence[str] = HW4_TYPES) -> tuple[list[str], list[str]]:
    """A seeded train/val split **by image**, stratified by type: each type
    gives ``max(1, round(val_ratio * count))`` validation images (none when
    ``val_ratio == 0``). Returns ``(train names, val names)`` in input order.

    (Report A's released code split 0.5 % of the *patches* at random, so its
    validation patches came from training images; splitting whole images
    avoids that leak.)
    """
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    by_type: dict[str, list[str]] = {}
    for n in names:
        by_type.setdefault(degradation_type(n, types), []).append(n)
    rng = np.random.default_rng(seed)
    val: set[str] = set()
    for kind in sorted(by_type):
        group = by_type[kind]
        k = 0 if val_ratio == 0 else min(len(group) - 1, max(1, round(val_ratio * len(group))))
        val.update(group[i] for i in rng.permutation(len(group))[:k])
    return [n for n in names if n not in val], [n for n in names if n in val]


# --------------------------------------------------------------------------- all-in-one data for notebook 01

#: the embedded tasks that stand in for the course's rain and snow
EMBEDDED_RAIN_SNOW = ("rain_light", "rain_heavy", "snow")


@dataclass
class AllInOneData:
    """Typed pairs of every split for all-in-one training and per-type evaluation.

    ``train``/``val``/``eval``: ``[(type, name, degraded, clean)]``; ``eval`` is
    the labelled held-out split the notebook reports (``eval_split`` names it:
    the embedded ``test`` split, or HW4's ``val`` split because the HW4 test
    set has no clean images). ``submission``: ``[(file name, degraded)]``, the
    images whose restorations go to ``pred.npz``. ``source`` says where it all
    came from.
    """

    types: list[str]
    train: list
    val: list
    eval: list
    eval_split: str
    submission: list
    source: str

    def by_type(self, split: str = "eval") -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
        """``{type: [(name, degraded, clean)]}`` of a split, in ``types`` order."""
        items = getattr(self, split)
        return {t: [(n, lq, gt) for k, n, lq, gt in items if k == t] for t in self.types}

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {type: number of images}}`` (plus the unpaired submission set)."""
        out = {s: {t: sum(k == t for k, *_ in getattr(self, s)) for t in self.types}
               for s in ("train", "val", "eval")}
        out["submission"] = {"all types": len(self.submission)}
        return out


def load_all_in_one(data_root: str | os.PathLike | None = None, *, tasks: Sequence[str] = EMBEDDED_RAIN_SNOW,
                    val_ratio: float = 0.005, seed: int = 0) -> AllInOneData:
    """The rain/snow data of notebook 01.

    * ``data_root=None``: the embedded dataset, one type per task in ``tasks``
      (same clean photos under each degradation; splits by photo). Names are
      ``<task>-<photo>.png``; the submission set is the degraded test images.
    * an HW4 folder, raw or prepared (see the module docstring): types
      ``rain``/``snow`` from the file names. Without a ``val`` folder the
      ``train`` pairs are split by image with :func:`split_by_image`
      (``val_ratio``, ``seed``). The main table is computed on ``val``; the
      submission set is ``test/degraded``. ``data_root`` is absolute or
      relative to the repository root; a folder written by
      ``prepare_hw4.py --out`` must match its ``MANIFEST.json``, an unfinished
      one is refused, and the raw course folder is read with a warning.
    """
    if data_root is None:
        splits = {s: [(t, f"{t}-{n}.png", lq, gt) for t in tasks for n, lq, gt in load_pairs(t, s)]
                  for s in ("train", "val", "test")}
        return AllInOneData(types=list(tasks), train=splits["train"], val=splits["val"], eval=splits["test"],
                            eval_split="test", submission=[(n, lq) for _, n, lq, _ in splits["test"]],
                            source=f"embedded dataset, tasks {', '.join(tasks)}")
    root = resolve_data_root(data_root)
    check_data_folder(root, script="prepare_hw4", what="HW4")
    if not root.is_dir():
        raise EmptyDatasetError(f"{root}: data_root folder not found")
    if (root / "val" / "degraded").is_dir():
        train, val = load_typed_pairs(root, "train"), load_typed_pairs(root, "val")
        how = "train/ and val/ folders"
    else:
        names = list_images(root / "train" / "degraded")
        train_names, val_names = split_by_image(names, val_ratio, seed)
        train = load_typed_pairs(root, "train", files=train_names)
        val = load_typed_pairs(root, "train", files=val_names) if val_names else []
        how = f"train/ split by image, {val_ratio:g} per type to validation (seed {seed})"
    if not val:
        raise EmptyDatasetError(f"{root}: no validation images (val_ratio={val_ratio}); the notebook needs some")
    test_dir = root / "test" / "degraded"
    submission = load_images(test_dir) if test_dir.is_dir() else []
    types = [t for t in HW4_TYPES if any(k == t for k, *_ in train)]
    return AllInOneData(types=types, train=train, val=val, eval=val, eval_split="val", submission=submission,
                        source=f"{root} ({how}; {len(submission)} unlabelled test images)")

"""A task's image pairs as ``(name, degraded, clean)`` arrays: loaded from the
embedded dataset or a real folder, where they came from (provenance), and the
training / validation datasets made from them."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..utils import resolve_data_root, sha256_bytes
from . import embedded
from .datasets import MemoryPairs, PairedFolderDataset
from .degradations import TASK_SCALES
from .manifest import check_data_folder

__all__ = ["Pair", "load_pairs", "data_provenance", "train_val_sets"]

Pair = tuple[str, np.ndarray, np.ndarray]


def load_pairs(task: str, split: str, data_root: str | os.PathLike | None = None, *,
               limit: int | None = None) -> list[Pair]:
    """``(name, degraded, clean)`` float arrays for one task and split.

    ``data_root=None`` uses the embedded dataset (built on first use). A real
    dataset folder must follow the embedded layout
    ``<data_root>/<split>/degraded|clean/*.png`` (the ``data_scripts/``
    preparation scripts write it). ``data_root`` is absolute or relative to
    the repository root (:func:`restore_lib.utils.resolve_data_root`); a
    prepared folder must match its ``MANIFEST.json`` (in ``<data_root>/<split>``
    or ``<data_root>``), a raw one is read with a warning
    (:func:`restore_lib.data.manifest.check_data_folder`). The clean images
    of a task that changes the size (``sr_x4``) must be ``TASK_SCALES[task]``
    times the degraded ones. ``limit`` keeps the first ``limit`` pairs.
    """
    if data_root is None:
        embedded.ensure()
        pairs = embedded.load_split(task, split)
    else:
        root = resolve_data_root(data_root) / split
        check_data_folder(root, what=f"'{split}' split", levels=1)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no '{split}' folder (expected <data_root>/{split}/degraded|clean)")
        ds = PairedFolderDataset(root, scale=TASK_SCALES.get(task, 1), in_memory=False, verify=False)
        pairs = []
        for i in range(len(ds)):
            item = ds[i]
            pairs.append((item["name"], item["lq"].permute(1, 2, 0).numpy(), item["gt"].permute(1, 2, 0).numpy()))
    return pairs[:limit] if limit else pairs


def data_provenance(tasks: str | Sequence[str], data_root=None, split: str = "test") -> dict:
    """``{"name", "hash", "split"}`` for the provenance record."""
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if data_root is None:
        root = embedded.ensure()
        man = embedded.read_manifest(root)
        test_imgs = ", ".join(man.get("splits", {}).get("test", [])) if isinstance(man.get("splits"), dict) else ""
        return {"name": f"embedded ({', '.join(tasks)})", "hash": embedded.dataset_hash(root),
                "split": f"by image; evaluated on {split}" + (f" = {test_imgs}" if test_imgs else "")}
    root = resolve_data_root(data_root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    digest = sha256_bytes("\n".join(f"{p.relative_to(root)}:{p.stat().st_size}" for p in files).encode())
    return {"name": f"{root.name} ({', '.join(tasks)})", "hash": digest,
            "split": f"{split} (listing hash of {len(files)} files)"}


def train_val_sets(train_pairs: Sequence[Pair], val_pairs: Sequence[Pair], *, patch_size: int, scale: int = 1,
                   augment=None, seed: int = 0):
    """Random-crop training set and full-image validation set over in-memory pairs."""
    return (MemoryPairs(train_pairs, scale=scale, patch_size=patch_size, augment=augment, seed=seed),
            MemoryPairs(val_pairs, scale=scale))

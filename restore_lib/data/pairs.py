"""A task's image pairs as ``(name, degraded, clean)`` arrays: loaded from the
embedded dataset or a real folder, where they came from (provenance), and the
training / validation datasets made from them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils import sha256_bytes
from . import embedded
from .datasets import MemoryPairs, PairedFolderDataset

__all__ = ["Pair", "load_pairs", "data_provenance", "train_val_sets"]

Pair = tuple[str, np.ndarray, np.ndarray]


def load_pairs(task: str, split: str, data_root: str | os.PathLike | None = None, *,
               limit: int | None = None) -> list[Pair]:
    """``(name, degraded, clean)`` float arrays for one task and split.

    ``data_root=None`` uses the embedded dataset (built on first use). A real
    dataset folder must follow the embedded layout
    ``<data_root>/<split>/degraded|clean/*.png`` (the ``data_scripts/``
    preparation scripts write it). ``limit`` keeps the first ``limit`` pairs.
    """
    if data_root is None:
        embedded.ensure()
        pairs = embedded.load_split(task, split)
    else:
        root = Path(data_root) / split
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no '{split}' folder (expected <data_root>/{split}/degraded|clean)")
        ds = PairedFolderDataset(root, in_memory=False)
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
    root = Path(data_root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    digest = sha256_bytes("\n".join(f"{p.relative_to(root)}:{p.stat().st_size}" for p in files).encode())
    return {"name": f"{root.name} ({', '.join(tasks)})", "hash": digest,
            "split": f"{split} (listing hash of {len(files)} files)"}


def train_val_sets(train_pairs: Sequence[Pair], val_pairs: Sequence[Pair], *, patch_size: int, scale: int = 1,
                   augment=None, seed: int = 0):
    """Random-crop training set and full-image validation set over in-memory pairs."""
    return (MemoryPairs(train_pairs, scale=scale, patch_size=patch_size, augment=augment, seed=seed),
            MemoryPairs(val_pairs, scale=scale))

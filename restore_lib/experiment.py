"""Glue that keeps the notebooks short: load a task's pairs (embedded dataset
or a real folder), record where the data came from, and evaluate a model on
held-out images under a metric protocol."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .metrics import MetricSpec

__all__ = ["load_pairs", "per_image_table", "data_provenance", "to_tensor", "evaluate", "identity_baseline", "summarize",
           "train_val_sets"]

Pair = tuple[str, np.ndarray, np.ndarray]


def to_tensor(img) -> torch.Tensor:
    """(H,W,3) float/uint8 array -> (3,H,W) float32 tensor in [0,1]."""
    if isinstance(img, torch.Tensor):
        return img.float()
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)


def load_pairs(task: str, split: str, data_root: str | os.PathLike | None = None, *,
               limit: int | None = None) -> list[Pair]:
    """``(name, degraded, clean)`` float arrays for one task and split.

    ``data_root=None`` uses the embedded dataset (built on first use). A real
    dataset folder must follow the embedded layout
    ``<data_root>/<split>/degraded|clean/*.png`` (the ``data_scripts/``
    preparation scripts write it). ``limit`` keeps the first ``limit`` pairs.
    """
    if data_root is None:
        from .data import embedded

        embedded.ensure()
        pairs = embedded.load_split(task, split)
    else:
        from .data.datasets import PairedFolderDataset

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
        from .data import embedded

        root = embedded.ensure()
        man = embedded.read_manifest(root)
        test_imgs = ", ".join(man.get("splits", {}).get("test", [])) if isinstance(man.get("splits"), dict) else ""
        return {"name": f"embedded ({', '.join(tasks)})", "hash": embedded.dataset_hash(root),
                "split": f"by image; evaluated on {split}" + (f" = {test_imgs}" if test_imgs else "")}
    from .utils import sha256_bytes

    root = Path(data_root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    digest = sha256_bytes("\n".join(f"{p.relative_to(root)}:{p.stat().st_size}" for p in files).encode())
    return {"name": f"{root.name} ({', '.join(tasks)})", "hash": digest,
            "split": f"{split} (listing hash of {len(files)} files)"}


def identity_baseline(lq: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """The degraded input as a 'restoration': itself, or its MATLAB-bicubic
    upsampling for super-resolution."""
    if scale == 1:
        return lq
    from .data.imresize import imresize

    up = imresize(lq.unsqueeze(0) if lq.dim() == 3 else lq, scale=scale).clamp(0, 1)
    return up[0] if lq.dim() == 3 else up


@torch.no_grad()
def evaluate(model: Callable | None, pairs: Sequence[Pair], spec: MetricSpec, *, device="cpu", scale: int = 1,
             tile: int | None = None, overlap: int = 32, multiple: int = 1, forward: Callable | None = None,
             keep_outputs: bool = False):
    """Score ``model`` (or the identity baseline when ``model is None``) on
    ``pairs`` under ``spec``. Returns a DataFrame with one row per image
    (``name, psnr_in, ssim_in, psnr, ssim``) and, with ``keep_outputs``, a dict
    of the restored tensors. ``forward(model, lq_batch)`` customises the call
    (e.g. FSRCNN on Y); ``tile`` switches to tiled inference."""
    import pandas as pd

    from .data.patches import tiled_inference

    if model is not None and hasattr(model, "eval"):
        model.eval()
    rows, outputs = [], {}
    for name, lq_np, gt_np in pairs:
        lq, gt = to_tensor(lq_np)[None], to_tensor(gt_np)[None]
        base = identity_baseline(lq, scale)
        if model is None:
            pred = base
        else:
            call = (lambda x: forward(model, x)) if forward else model
            if tile:
                pred = tiled_inference(call, lq.to(device), tile=tile, overlap=overlap, scale=scale,
                                       multiple=multiple)
            else:
                pred = call(lq.to(device)).float().cpu()
        pred = pred.clamp(0, 1)
        b = spec.evaluate(base, gt)
        m = spec.evaluate(pred, gt)
        rows.append({"name": name, "psnr_in": b["psnr"], "ssim_in": b["ssim"], "psnr": m["psnr"], "ssim": m["ssim"]})
        if keep_outputs:
            outputs[name] = pred[0]
    df = pd.DataFrame(rows)
    return (df, outputs) if keep_outputs else df


def summarize(df, label_in: str = "degraded input", label_out: str = "restored"):
    """Mean of a per-image evaluation as two rows (input, restored)."""
    import pandas as pd

    return pd.DataFrame([
        {"method": label_in, "PSNR": df["psnr_in"].mean(), "SSIM": df["ssim_in"].mean()},
        {"method": label_out, "PSNR": df["psnr"].mean(), "SSIM": df["ssim"].mean()},
    ])


def train_val_sets(train_pairs: Sequence[Pair], val_pairs: Sequence[Pair], *, patch_size: int, scale: int = 1,
                   augment=None, seed: int = 0):
    """Random-crop training set and full-image validation set over in-memory pairs."""
    from .data.datasets import MemoryPairs

    return (MemoryPairs(train_pairs, scale=scale, patch_size=patch_size, augment=augment, seed=seed),
            MemoryPairs(val_pairs, scale=scale))


def per_image_table(df, column: str = "psnr"):
    """``column`` per image (rows) and method (columns) from a long table with ``image``/``method``
    columns (as written by the notebooks' method evaluations)."""
    order = list(dict.fromkeys(df["method"]))
    wide = df.pivot(index="image", columns="method", values=column)[order]
    wide.columns.name = None
    return wide.reset_index()

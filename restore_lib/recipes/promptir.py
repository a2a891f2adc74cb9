"""How reports 000 and 001 train and score PromptIR, and the course's
``pred.npz`` export.

Pipelines
---------
Report A (PromptIR-CSA) resizes every image to S x S and trains on a 3 x 3
grid of S/2 patches with stride S/4; at inference it restores the patches of
the resized image, blends them with a window and resizes back
(:class:`ReportAScheme`, ``scheme="patch"``). Its ablation trains on the
S/2-resized whole image instead (``scheme="direct"``). Report B (official
PromptIR) trains and restores at full resolution. :func:`fit` trains either
with AdamW + cosine annealing and validates once at the end;
:func:`typed_val_fn` and :func:`evaluate_by_type` score per degradation type
with :func:`restore_lib.evaluate.evaluate`, and :func:`type_table` /
:func:`ablation_rows` build the notebook's tables.

Competition export
------------------
Competition export: the course's ``pred.npz`` submission file.

Format (course HW4, rain/snow removal): one ``.npz`` archive that maps each
test image's **file name** (``"0.png"`` ... ``"99.png"``) to the restored
image as a ``uint8`` array of shape ``(3, H, W)`` (channels first, RGB,
values 0..255), the same ``H, W`` as the degraded test image.

* :func:`write_submission` checks every entry, converts float tensors in
  [0, 1] to ``uint8`` (rounded, as saving a PNG does), and writes the archive
  atomically (temporary file + ``os.replace``): a crash never leaves a
  half-written ``pred.npz`` behind.
* :func:`read_submission` reads an archive back (``allow_pickle=False``) and
  applies the same checks, so a file made by other code can be validated
  before uploading it.

Every problem raises :class:`SubmissionError` (a ``ValueError``) whose message
names the file or the entry and what is wrong (dtype, shape, channel count,
value range, name, missing or unexpected images).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.io import to_tensor
from ..data.patches import extract_patches, tiled_inference
from ..evaluate import evaluate, make_val_fn
from ..metrics import MetricSpec
from ..models import count_parameters
from ..train import TrainConfig, Trainer
from ..utils import atomic_write_bytes

__all__ = ["resize", "ReportAScheme", "report_b_forward", "typed_val_fn", "fit", "evaluate_by_type", "type_table",
           "ablation_rows", "restore_images", "SubmissionError", "to_submission_array", "check_name",
           "write_submission", "read_submission"]

#: Report A's input schemes
SCHEMES = ("patch", "direct")


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bicubic resize of an (N, C, H, W) batch to ``size`` = (H, W), antialiased
    when shrinking (like PIL), clipped to [0, 1]; the batch itself when it
    already has that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _to_uint8(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t * 255).to(torch.uint8)


@dataclass(frozen=True)
class ReportAScheme:
    """Report A's geometry: resize to ``size`` (S) and cut S/2 patches with
    stride S/4 (``scheme="patch"``), or resize to S/2 whole (``"direct"``);
    overlapping restored patches are blended with ``window``."""

    size: int = 256
    scheme: str = "patch"
    window: str = "hann"

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"ReportAScheme: scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.size < 4 or self.size % 4:
            raise ValueError(f"ReportAScheme: size must be a positive multiple of 4, got {self.size!r}")

    @property
    def patch(self) -> int:
        return self.size // 2

    @property
    def stride(self) -> int:
        return self.size // 4

    def training_pairs(self, items) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(name, degraded, clean)`` uint8 (3, h, w) tensors from ``(type, name,
        degraded, clean)`` items: the patches (named ``name#k``) or the
        half-size whole images."""
        out = []
        for _, name, lq, gt in items:
            if self.scheme == "direct":
                half = (self.patch, self.patch)
                out.append((name, *(_to_uint8(resize(to_tensor(a)[None], half)[0]) for a in (lq, gt))))
                continue
            lp, gp = (extract_patches(resize(to_tensor(a)[None], (self.size, self.size))[0], self.patch,
                                      self.stride)[0] for a in (lq, gt))
            out += [(f"{name}#{k}", _to_uint8(lp[k]), _to_uint8(gp[k])) for k in range(len(lp))]
        return out

    def forward(self, model: Callable, x: torch.Tensor) -> torch.Tensor:
        """Restore an (N, 3, H, W) batch the way Report A's inference does."""
        h, w = x.shape[-2:]
        if self.scheme == "direct":
            return resize(model(resize(x, (self.patch, self.patch))), (h, w))
        y = tiled_inference(model, resize(x, (self.size, self.size)), tile=self.patch,
                            overlap=self.patch - self.stride, window=self.window, batch_size=9)
        return resize(y, (h, w))


def report_b_forward(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """Report B's inference: the whole image at full resolution (the model pads
    to its size multiple itself)."""
    return model(x)


def typed_val_fn(pairs_by_type: Mapping[str, Sequence], spec: MetricSpec, forward: Callable):
    """A trainer's ``val_fn``: per degradation type the mean PSNR/SSIM of
    ``forward(model, lq)`` on whole images, then the mean over types (every
    type weighs the same, whatever its image count)."""
    per_type = [make_val_fn(pairs, spec, restore=forward) for pairs in pairs_by_type.values()]

    def validate(model) -> dict:
        scores = [fn(model) for fn in per_type]
        return {k: float(np.mean([s[k] for s in scores])) for k in ("val_psnr", "val_ssim")}

    return validate


def fit(model, train_set, loss, *, steps: int, epochs: int, batch: int, lr: float, weight_decay: float, amp: str,
        val_fn: Callable, seed: int, ckpt_dir, device, resume: bool = False) -> dict:
    """Train with AdamW + cosine annealing to 1e-6 (both reports), validate once
    at the end and checkpoints at the end (``resume=True`` continues a killed run
    from ``ckpt_dir``). ``epochs > 0`` overrides ``steps``.

    Returns ``{"model", "history", "val_psnr", "val_ssim", "final_loss" (mean of
    the last 5 logged losses), "params", "steps", "cpu_seconds"}``."""
    import time

    total = epochs * (len(train_set) // batch) if epochs else steps
    if total < 1:
        raise ValueError(f"fit: {epochs} epoch(s) of {len(train_set)} items in batches of {batch} is no step; "
                         "lower the batch or train by steps")
    config = TrainConfig(total_steps=total, batch_size=batch, lr=lr, weight_decay=weight_decay, optimizer="adamw",
                         scheduler="cosine", eta_min=1e-6, amp=amp, log_every=5, val_every=0, ckpt_every=total,
                         seed=seed)
    t0 = time.process_time()
    history = Trainer(model, train_set, loss, config, val_fn=val_fn, ckpt_dir=ckpt_dir, device=device,
                      resume=resume, progress=False).fit()
    last = history.dropna(subset=["val_psnr"]).iloc[-1]
    return {"model": model, "history": history, "val_psnr": float(last["val_psnr"]),
            "val_ssim": float(last["val_ssim"]), "final_loss": float(history["loss"].dropna().tail(5).mean()),
            "params": count_parameters(model), "steps": total, "cpu_seconds": time.process_time() - t0}


def evaluate_by_type(methods: Mapping[str, Callable | None], pairs_by_type: Mapping[str, Sequence],
                     specs: Sequence[MetricSpec], *, device="cpu"):
    """Score ``methods`` (as :func:`restore_lib.evaluate.evaluate` takes them)
    on each degradation type under every spec, restoring each image once.

    Returns ``(tables, outputs)``: one long DataFrame per spec with a ``type``
    column, and ``{method: {type: {name: (3, H, W) output}}}``."""
    tables = [[] for _ in specs]
    outputs = {m: {} for m in methods}
    for t, pairs in pairs_by_type.items():
        df, outs = evaluate(methods, pairs, specs[0], device=device, keep_outputs=True)
        for m in methods:
            outputs[m][t] = {name: outs[(name, m)] for name, *_ in pairs}
        cached = {m: (lambda lq, name, m=m: outputs[m][t][name][None]) for m in methods}
        scored = [df] + [evaluate(cached, pairs, spec, args=("lq", "name")) for spec in specs[1:]]
        for table, part in zip(tables, scored):
            table.append(part.assign(type=t))
    return [pd.concat(parts, ignore_index=True) for parts in tables], outputs


def type_table(long: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """The notebook's main table from :func:`evaluate_by_type`'s long table: a row
    per type (mean over its images) with ``PSNR <label>`` and ``SSIM <label>``
    columns in ``labels`` order, plus an ``average`` row (the mean over types)."""
    means = long.groupby(["type", "method"], sort=False)[["psnr", "ssim"]].mean()
    rows = []
    for t in long["type"].unique():
        row = {"type": t}
        for metric in ("psnr", "ssim"):
            row.update({f"{metric.upper()} {label}": float(means.loc[(t, m), metric]) for m, label in labels.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    return pd.concat([df, pd.DataFrame([{"type": "average", **df.drop(columns="type").mean().to_dict()}])],
                     ignore_index=True)


def ablation_rows(runs: Mapping[str, dict], arms: Mapping[str, str]) -> pd.DataFrame:
    """``variant, val PSNR, val SSIM, final train loss, parameters`` for
    ``{variant: run tag}`` over :func:`fit` results ``runs[tag]``."""
    return pd.DataFrame([{"variant": v, "val PSNR": runs[t]["val_psnr"], "val SSIM": runs[t]["val_ssim"],
                          "final train loss": runs[t]["final_loss"], "parameters": runs[t]["params"]}
                         for v, t in arms.items()])


@torch.no_grad()
def restore_images(restore: Callable, images: Sequence[tuple[str, np.ndarray]], *, device="cpu") -> dict:
    """``{name: restored (3, H, W) tensor in [0, 1]}`` for ``(name, degraded)``
    images without ground truth (e.g. the test set of a submission)."""
    return {name: restore(to_tensor(lq)[None].to(device)).float().cpu().clamp(0, 1)[0] for name, lq in images}


class SubmissionError(ValueError):
    """A prediction or a ``pred.npz`` that does not follow the submission format."""


def check_name(name) -> str:
    """A valid entry name is a plain file name ending in ``.png`` (``"17.png"``),
    without folders; return it unchanged or raise :class:`SubmissionError`."""
    if not isinstance(name, str):
        raise SubmissionError(f"entry name {name!r} must be a str (a test file name such as '0.png'), "
                              f"got {type(name).__name__}")
    if not name or name != name.strip():
        raise SubmissionError(f"entry name {name!r}: empty or with surrounding spaces")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise SubmissionError(f"entry name {name!r}: must be a file name without folders (e.g. '0.png')")
    if not name.lower().endswith(".png"):
        raise SubmissionError(f"entry name {name!r}: must be the test image's file name, ending in '.png'")
    return name


def to_submission_array(pred, name: str = "prediction") -> np.ndarray:
    """One prediction as a ``uint8 (3, H, W)`` array.

    Accepted: a ``uint8`` numpy array or tensor of shape ``(3, H, W)`` (kept as
    is), or a floating-point tensor ``(3, H, W)`` in [0, 1] (rounded to
    ``round(255 x)``). Float numpy arrays, other integer types, HWC layouts,
    batches and values outside [0, 1] are errors, not silent conversions.
    """
    where = f"{name!r}"
    if isinstance(pred, torch.Tensor):
        t = pred.detach().cpu()
        if t.dtype == torch.uint8:
            arr = t.numpy()
        elif t.is_floating_point():
            _check_shape(tuple(t.shape), where)
            t = t.double()
            if not bool(torch.isfinite(t).all()):
                raise SubmissionError(f"{where}: float prediction has NaN or infinite values")
            lo, hi = float(t.min()), float(t.max())
            if lo < 0.0 or hi > 1.0:
                raise SubmissionError(f"{where}: float values must lie in [0, 1] (min {lo:.4g}, max {hi:.4g}); "
                                      f"clamp the model output with .clamp(0, 1) first")
            arr = torch.round(t * 255.0).to(torch.uint8).numpy()
        else:
            raise SubmissionError(f"{where}: tensor dtype {t.dtype} is not supported; use uint8 or a float "
                                  f"tensor in [0, 1]")
    elif isinstance(pred, np.ndarray):
        if pred.dtype != np.uint8:
            hint = (" (float numpy arrays are refused: pass a float tensor in [0, 1] or convert with "
                    "np.round(x * 255).astype(np.uint8))") if pred.dtype.kind == "f" else ""
            raise SubmissionError(f"{where}: numpy dtype {pred.dtype} is not allowed; the format needs uint8{hint}")
        arr = pred
    else:
        raise SubmissionError(f"{where}: expected a numpy array or torch tensor, got {type(pred).__name__}")
    _check_shape(arr.shape, where)
    return np.ascontiguousarray(arr)


def _check_shape(shape: tuple, where: str) -> None:
    if len(shape) != 3:
        hint = " (a batch? pass one image per name)" if len(shape) == 4 else ""
        raise SubmissionError(f"{where}: shape {tuple(shape)} must be (3, H, W){hint}")
    c, h, w = shape
    if c != 3:
        if shape[-1] == 3:
            raise SubmissionError(f"{where}: shape {tuple(shape)} looks like (H, W, 3); the format is channels "
                                  f"first (3, H, W): transpose with arr.transpose(2, 0, 1)")
        raise SubmissionError(f"{where}: {c} channels in shape {tuple(shape)}; the format needs 3 (RGB), "
                              f"shape (3, H, W)")
    if h < 1 or w < 1:
        raise SubmissionError(f"{where}: empty image of shape {tuple(shape)}")


def _check_expected(names: Iterable[str], expected, where: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Compare the entries with ``expected``: names, or a mapping name -> (H, W)."""
    if expected is None:
        return
    want = dict(expected) if isinstance(expected, Mapping) else {n: None for n in expected}
    have = set(names)
    missing = sorted(set(want) - have)
    extra = sorted(have - set(want))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing image(s): {', '.join(missing[:5])}"
                        + (" ..." if len(missing) > 5 else ""))
    if extra:
        problems.append(f"{len(extra)} unexpected image(s): {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else ""))
    for n, hw in want.items():
        if hw is not None and n in arrays and tuple(arrays[n].shape[1:]) != tuple(hw):
            problems.append(f"{n!r} is {arrays[n].shape[1]}x{arrays[n].shape[2]}, the test image is "
                            f"{hw[0]}x{hw[1]}")
    if problems:
        raise SubmissionError(f"{where}: " + "; ".join(problems))


def write_submission(predictions: Mapping[str, object], path: str | os.PathLike = "pred.npz", *,
                     expected: Iterable[str] | Mapping[str, tuple[int, int]] | None = None,
                     compress: bool = True) -> Path:
    """Check ``predictions`` (file name -> image, see :func:`to_submission_array`)
    and write them to ``path`` atomically; return the path.

    ``expected``: the test file names (or a mapping name -> ``(H, W)``) that
    the archive must contain exactly, e.g. the listing of ``test/degraded``.
    ``compress``: ``np.savez_compressed`` (default; ``np.load`` reads both).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise SubmissionError(f"{path}: the submission file must end in '.npz' (the course expects pred.npz)")
    if not isinstance(predictions, Mapping) or not predictions:
        raise SubmissionError(f"{path}: predictions must be a non-empty dict of file name -> image")
    arrays = {check_name(n): to_submission_array(p, n) for n, p in predictions.items()}
    _check_expected(arrays, expected, str(path), arrays)
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


#: the most a pred.npz may unpack to (the course's 100 test images take about 20 MB) and its member count
MAX_SUBMISSION_BYTES = 2 * 2 ** 30
MAX_SUBMISSION_MEMBERS = 10_000


def _check_npz_sizes(path: Path, max_bytes: int) -> None:
    """Refuse, before anything is decompressed or allocated, an archive whose
    members (by their zip entries and their .npy headers) would unpack to more
    than ``max_bytes``."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_SUBMISSION_MEMBERS:
                raise SubmissionError(f"{path}: {len(infos)} members, more than {MAX_SUBMISSION_MEMBERS}")
            total = 0
            for info in infos:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(f))
                total += max(info.file_size, int(np.prod(shape, dtype=object)) * dtype.itemsize)
                if total > max_bytes:
                    raise SubmissionError(f"{path}: unpacks to more than {max_bytes / 2 ** 30:.1f} GiB "
                                          f"(member {info.filename!r}); refusing to read it")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise SubmissionError(f"{path}: not a readable .npz archive of arrays ({e})") from e


def read_submission(path: str | os.PathLike, *,
                    expected: Iterable[str] | Mapping[str, tuple[int, int]] | None = None,
                    max_bytes: int = MAX_SUBMISSION_BYTES) -> dict[str, np.ndarray]:
    """Read and validate a ``pred.npz``; return ``{file name: uint8 (3, H, W)}``.
    An archive that would unpack to more than ``max_bytes`` is refused unread."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise SubmissionError(f"{path}: not an .npz archive (np.savez writes a zip file of named arrays)")
    _check_npz_sizes(path, max_bytes)
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                arrays[name] = npz[name]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        # ValueError: a corrupt member, or an object array that would need pickle (never allowed)
        raise SubmissionError(f"{path}: not a readable .npz archive of arrays ({e})") from e
    if not arrays:
        raise SubmissionError(f"{path}: the archive holds no images")
    out = {}
    for name, arr in arrays.items():
        try:
            check_name(name)
            out[name] = to_submission_array(arr, name)
        except SubmissionError as e:
            raise SubmissionError(f"{path}: {e}") from e
    _check_expected(out, expected, str(path), out)
    return out

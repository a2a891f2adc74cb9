"""Scoring restorers on whole held-out images, and the tables made from the scores.

:func:`evaluate` is the one evaluation loop of the library: every recipe and
notebook scores its methods with it. It returns a long table (one row per
image and method); :func:`evaluate_model` is the common one-model view of it
(input vs restored per image), and :func:`method_table`, :func:`subset_table`,
:func:`per_image_table` and :func:`summarize` turn long tables into the
report tables. :func:`make_val_fn` builds the trainer's ``val_fn`` from the same
loop.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .data.imresize import imresize
from .data.io import to_tensor
from .data.pairs import Pair
from .lpips import lpips_score
from .data.patches import tiled_inference
from .metrics import MetricSpec

__all__ = ["identity_baseline", "model_restorer", "evaluate", "evaluate_model", "make_val_fn", "summarize",
           "method_table", "subset_table", "per_image_table", "ARGS"]

#: what a method may receive, in the order named by ``evaluate(args=...)``
ARGS = ("lq", "gt", "name")


def identity_baseline(lq: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """The degraded input as a 'restoration': itself, or its MATLAB-bicubic
    upsampling for super-resolution."""
    if scale == 1:
        return lq
    up = imresize(lq.unsqueeze(0) if lq.dim() == 3 else lq, scale=scale).clamp(0, 1)
    return up[0] if lq.dim() == 3 else up


def model_restorer(model: Callable, *, forward: Callable | None = None, tile: int | None = None,
                   overlap: int = 32, multiple: int = 1, scale: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(lq) -> restored`` for a model: ``forward(model, lq)`` customises the
    call (e.g. FSRCNN on Y); ``tile`` switches to tiled inference."""
    call = (lambda x: forward(model, x)) if forward else model
    if not tile:
        return call
    return lambda x: tiled_inference(call, x, tile=tile, overlap=overlap, scale=scale, multiple=multiple)


@torch.no_grad()
def evaluate(methods: Mapping[str, Callable | None], pairs: Sequence[Pair], spec: MetricSpec, *, scale: int = 1,
             device="cpu", args: Sequence[str] = ("lq",), lpips_model=None, keep_outputs: bool = False):
    """Score each method on whole ``pairs`` (``(name, lq, gt)``) under ``spec``.

    A method is ``f(*args)``: by default ``f(lq)``; ``args=("lq", "gt")`` for
    oracles that see the ground truth, ``("lq", "name")`` for methods that look
    up a per-image cache. ``lq``/``gt`` are (1, 3, H, W) tensors on ``device``.
    ``None`` is the identity baseline (the degraded input, MATLAB-bicubic
    upsampled when ``scale > 1``). Outputs are clamped to [0, 1] and must have
    the ground truth's shape. Models are put in eval mode by the caller.

    Returns a long DataFrame ``(image, method, psnr, ssim)``, plus an ``lpips``
    column (RGB, whole image) when ``lpips_model`` (a
    :class:`restore_lib.lpips.LPIPS`) is given, and, with ``keep_outputs``,
    ``{(image, method): (3, H, W) tensor}``.
    """
    import pandas as pd

    unknown = [a for a in args if a not in ARGS]
    if unknown:
        raise ValueError(f"evaluate: unknown method argument(s) {unknown}; choose from {ARGS}")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    rows, outputs = [], {}
    for name, lq_np, gt_np in pairs:
        lq, gt = to_tensor(lq_np)[None], to_tensor(gt_np)[None]
        given = {"lq": lq.to(dev), "gt": gt.to(dev), "name": name}
        for label, fn in methods.items():
            pred = identity_baseline(lq, scale) if fn is None else fn(*(given[a] for a in args)).float().cpu()
            pred = pred.clamp(0, 1)
            if pred.shape != gt.shape:
                raise ValueError(f"{label} on {name}: output {tuple(pred.shape)} != ground truth {tuple(gt.shape)}")
            m = spec.evaluate(pred, gt)
            row = {"image": name, "method": label, "psnr": m["psnr"], "ssim": m["ssim"]}
            if lpips_model is not None:
                row["lpips"] = lpips_score(pred, gt, lpips_model)
            rows.append(row)
            if keep_outputs:
                outputs[(name, label)] = pred[0]
    df = pd.DataFrame(rows, columns=["image", "method", "psnr", "ssim"] + (["lpips"] if lpips_model else []))
    return (df, outputs) if keep_outputs else df


def evaluate_model(model: Callable | None, pairs: Sequence[Pair], spec: MetricSpec, *, device="cpu", scale: int = 1,
                   tile: int | None = None, overlap: int = 32, multiple: int = 1, forward: Callable | None = None,
                   keep_outputs: bool = False):
    """One model (or the identity baseline when ``model is None``) against its
    input, per image: a DataFrame ``name, psnr_in, ssim_in, psnr, ssim`` and,
    with ``keep_outputs``, ``{name: restored (3, H, W)}``. The model is put in
    eval mode; ``forward``/``tile`` as in :func:`model_restorer`."""
    import pandas as pd

    if model is not None and hasattr(model, "eval"):
        model.eval()
    restorer = None if model is None else model_restorer(model, forward=forward, tile=tile, overlap=overlap,
                                                          multiple=multiple, scale=scale)
    df, outs = evaluate({"input": None, "restored": restorer}, pairs, spec, scale=scale, device=device,
                        keep_outputs=True)
    inp, out = (df[df["method"] == m].reset_index(drop=True) for m in ("input", "restored"))
    wide = pd.DataFrame({"name": inp["image"], "psnr_in": inp["psnr"], "ssim_in": inp["ssim"],
                         "psnr": out["psnr"], "ssim": out["ssim"]})
    return (wide, {name: outs[(name, "restored")] for name in wide["name"]}) if keep_outputs else wide


def make_val_fn(pairs, spec: MetricSpec, restore: Callable | None = None, *, scale: int = 1,
           args: Sequence[str] = ("lq",)) -> Callable[[nn.Module], dict]:
    """The one validation-function builder: a trainer's ``val_fn(model) ->
    {"val_psnr", "val_ssim"}``, the mean :func:`evaluate` scores of
    ``restore(model, *args)`` (default: ``model(lq)``) on whole images, on the
    model's device. ``pairs``: ``(name, lq, gt)`` tuples, or a dataset of
    ``{"lq", "gt"}`` items (e.g. a full-image ``MemoryPairs``)."""
    if len(pairs) and isinstance(pairs[0], Mapping):
        pairs = [(str(pairs[i].get("name", i)), pairs[i]["lq"], pairs[i]["gt"]) for i in range(len(pairs))]

    def validate(model: nn.Module) -> dict:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
        fn = model if restore is None else (lambda *a: restore(model, *a))
        df = evaluate({"model": fn}, pairs, spec, scale=scale, device=dev, args=args)
        return {"val_psnr": float(df["psnr"].mean()), "val_ssim": float(df["ssim"].mean())}

    return validate


def summarize(df, label_in: str = "degraded input", label_out: str = "restored"):
    """Mean of an :func:`evaluate_model` table as two rows (input, restored)."""
    import pandas as pd

    return pd.DataFrame([
        {"method": label_in, "PSNR": df["psnr_in"].mean(), "SSIM": df["ssim_in"].mean()},
        {"method": label_out, "PSNR": df["psnr"].mean(), "SSIM": df["ssim"].mean()},
    ])


def method_table(df, reference: str | None = None, *, lpips_note: str | None = None,
                 columns: Sequence[str] | None = None):
    """Mean per method (order of first appearance) of an :func:`evaluate` table:
    the metric ``columns`` (``PSNR``, ``SSIM``, ``LPIPS``: the mean, or
    ``lpips_note`` such as ``"n/a (no trunk weights)"`` when there is no LPIPS
    value), ``ΔPSNR`` against ``reference`` (default: the first method) and
    ``images better`` (images with a higher PSNR than the reference's). Default
    ``columns``: PSNR, SSIM, and LPIPS when the table has it or a note is given."""
    import pandas as pd

    if columns is None:
        columns = ("PSNR", "SSIM", "LPIPS") if "lpips" in df or lpips_note is not None else ("PSNR", "SSIM")
    order = list(dict.fromkeys(df["method"]))
    reference = reference or order[0]
    if reference not in order:
        raise KeyError(f"method_table: unknown reference method {reference!r}; methods: {order}")
    ref = df[df["method"] == reference].set_index("image")["psnr"]
    have_lpips = "lpips" in df and df["lpips"].notna().any()
    rows = []
    for m in order:
        d = df[df["method"] == m]
        per = d.set_index("image")["psnr"]
        values = {"PSNR": float(d["psnr"].mean()), "SSIM": float(d["ssim"].mean()),
                  "LPIPS": float(d["lpips"].mean()) if have_lpips else (lpips_note or "n/a")}
        row = {"method": m, **{c: values[c] for c in columns}}
        row["ΔPSNR"] = float(d["psnr"].mean() - ref.mean())
        row["images better"] = int((per > ref.reindex(per.index)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def subset_table(df, subsets: Mapping[str, Sequence[str]], methods: Sequence[str] | None = None):
    """Mean PSNR and SSIM per (subset of images, method): one row per subset,
    columns ``"<method> PSNR"``, ``"<method> SSIM"`` and ``images``."""
    import pandas as pd

    methods = list(methods) if methods is not None else list(dict.fromkeys(df["method"]))
    rows = []
    for label, names in subsets.items():
        names = list(names)
        d = df[df["image"].isin(names)]
        if d.empty:
            raise KeyError(f"subset_table: no results for subset {label!r} ({names})")
        row = {"test set": label, "images": len(set(d["image"]))}
        for m in methods:
            dm = d[d["method"] == m]
            row[f"{m} PSNR"] = float(dm["psnr"].mean())
            row[f"{m} SSIM"] = float(dm["ssim"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def per_image_table(df, column: str = "psnr"):
    """``column`` per image (rows) and method (columns) of an :func:`evaluate` table."""
    order = list(dict.fromkeys(df["method"]))
    wide = df.pivot(index="image", columns="method", values=column)[order]
    wide.columns.name = None
    return wide.reset_index()

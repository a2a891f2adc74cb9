"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric", CVPR 2018), computed offline.

The ``lpips`` package is never imported here: building its model with an
ImageNet trunk downloads weights. Instead:

* the **linear heads** (one 1x1 conv per tapped layer, calibrated on human
  judgements) are read from the files the installed ``lpips`` wheel ships,
  ``lpips/weights/v0.1/{alex,vgg}.pth``, located without importing it;
* the **trunk** is torchvision's AlexNet (default) or VGG16 ``features``
  with ImageNet weights that must already be on disk
  (:func:`restore_lib.weights.find_weights`: a user path,
  ``$RESTORE_WEIGHTS_DIR`` or the torch hub cache). Without them there is no
  LPIPS: :func:`load_lpips` returns ``(None, "n/a (no trunk weights)")``; no
  other network is ever reported under this name.

The maths, for two images x0, x1 in [0, 1]:

1. map to [-1, 1] (``2x - 1``), then the scaling layer
   ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188) and scale
   (0.458, 0.448, 0.450);
2. take the trunk activations after five ReLUs (AlexNet ``features``
   indices 1, 4, 7, 9, 11; VGG16 relu1_2 ... relu5_3 = 3, 8, 15, 22, 29);
3. per layer l, unit-normalise every pixel's channel vector,
   ``f / (||f||_2 + 1e-10)``, take the squared difference of the two
   images' normalised features, weight the channels with the 1x1 linear head
   ``w_l`` and average over space;
4. sum the five layer values. The result is one number per image pair.

Licences: the ``lpips`` linear weights are BSD-2 (see LICENSES/); the
torchvision ImageNet weights carry their own terms.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoints import CheckpointError, canonicalize_state_dict, load_state_dict_checked, read_checkpoint_file
from .utils import sha256_file
from .weights import (REQUIRE_ENV, MissingWeightsError, find_weights, missing_weights_message, package_file,
                      weights_required)

__all__ = ["LPIPS", "load_lpips", "lpips_score", "NO_TRUNK", "LPIPSWeightsError", "NETS"]

#: the second element of :func:`load_lpips`'s result when no trunk weights exist
NO_TRUNK = "n/a (no trunk weights)"

#: per trunk: torchvision constructor / weights name, tapped ReLU indices in
#: ``features``, channels at the taps, smallest input side the trunk accepts
NETS = {
    "alex": {"torchvision": "alexnet", "taps": (1, 4, 7, 9, 11), "channels": (64, 192, 384, 256, 256),
             "min_side": 31},
    "vgg": {"torchvision": "vgg16", "taps": (3, 8, 15, 22, 29), "channels": (64, 128, 256, 512, 512),
            "min_side": 16},
}

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


class LPIPSWeightsError(FileNotFoundError):
    """Weights LPIPS needs (trunk or linear heads) are not on this machine."""


def _check_net(net: str) -> dict:
    if net not in NETS:
        raise ValueError(f"LPIPS: unknown net {net!r}; choose one of {', '.join(NETS)}")
    return NETS[net]


def _lin_weights_path(net: str) -> Path:
    path = package_file("lpips", "weights", "v0.1", f"{net}.pth")
    if path is None:
        raise LPIPSWeightsError(f"LPIPS-{net}: linear-head file lpips/weights/v0.1/{net}.pth not found; "
                                "install the 'lpips' wheel (it ships these small files)")
    return path


def _build_trunk(net: str) -> nn.Sequential:
    """torchvision's ``features`` up to the last tapped ReLU, built on the meta
    device (no random init of the unused classifier) and then given empty CPU
    storage that :meth:`LPIPS._load_trunk` fills completely."""
    import torchvision.models as tvm

    spec = NETS[net]
    with torch.device("meta"):
        full = getattr(tvm, spec["torchvision"])(weights=None)
    features = full.features[: spec["taps"][-1] + 1].to_empty(device="cpu")
    for m in features:
        if isinstance(m, nn.ReLU):
            m.inplace = False  # tapped activations must not be overwritten
    return features


def _unit_normalize(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + EPS)


#: torchvision's ImageNet trunk files: name, and the sha256 prefix torchvision puts in the name
TORCHVISION_SHA256 = {"alex": ("alexnet-owt-7be5be79.pth", "7be5be79"), "vgg": ("vgg16-397923af.pth", "397923af")}


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet (``net="alex"``) or VGG16 (``"vgg"``) trunk.

    ``trunk_path``: the torchvision ImageNet weights file
    (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, or any file with
    the same ``features.*`` keys); ``None`` searches
    ``$RESTORE_WEIGHTS_DIR`` and the torch hub cache. ``lin_path``: the
    linear-head file; ``None`` uses the one in the ``lpips`` wheel.
    Raises :class:`LPIPSWeightsError` when weights are missing.

    ``forward(x0, x1)`` takes (N, 3, H, W) images in [0, 1] and returns the N
    distances. Gradients flow to the inputs (usable as a loss); the
    network's own parameters are frozen.
    """

    def __init__(self, net: str = "alex", trunk_path: str | os.PathLike | None = None,
                 lin_path: str | os.PathLike | None = None):
        super().__init__()
        spec = _check_net(net)
        path, source = find_weights(spec["torchvision"], trunk_path)
        if path is None:
            raise LPIPSWeightsError(f"LPIPS-{net}: no ImageNet trunk weights: {source}")
        self.net = net
        self.taps = spec["taps"]
        self.min_side = spec["min_side"]
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = _build_trunk(net)
        self._load_trunk(path)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec["channels"])
        self._load_lins(Path(lin_path) if lin_path is not None else _lin_weights_path(net))
        self.trunk_source = source
        #: the trunk file's sha256, and whether it is torchvision's published file (any file with the right keys
        #: loads: this says which one the numbers came from)
        self.trunk_sha256 = sha256_file(path)
        known = TORCHVISION_SHA256[net]
        self.trunk_is_torchvision = self.trunk_sha256.startswith(known[1])
        self.trunk_source = (f"{source}; sha256 {self.trunk_sha256[:12]}, "
                             + (f"torchvision's {known[0]}" if self.trunk_is_torchvision
                                else f"NOT torchvision's {known[0]} (hash prefix {known[1]}): another file with the "
                                     f"same keys"))
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ weights
    def _load_trunk(self, path: Path) -> None:
        sd, _, _ = canonicalize_state_dict(read_checkpoint_file(path))
        feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        other = sorted(k for k in sd if not k.startswith(("features.", "classifier.")))
        load_state_dict_checked(self.features, {k: v.float() for k, v in feats.items()},
                                f"{path}: not a torchvision {NETS[self.net]['torchvision']} weights file",
                                prefix="features.", other=[("unexpected keys", other)])

    def _load_lins(self, path: Path) -> None:
        sd = read_checkpoint_file(path)
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: expected a state_dict of LPIPS linear heads")
        for i, lin in enumerate(self.lins):
            key = f"lin{i}.model.1.weight"
            if key not in sd:
                raise CheckpointError(f"{path}: missing LPIPS linear-head key {key!r} (has {sorted(sd)[:6]})")
            if sd[key].shape != lin.weight.shape:
                raise CheckpointError(f"{path}: {key} has shape {tuple(sd[key].shape)}, "
                                      f"LPIPS-{self.net} needs {tuple(lin.weight.shape)}")
            with torch.no_grad():
                lin.weight.copy_(sd[key])

    # ------------------------------------------------------------------ maths
    def _check(self, x0: torch.Tensor, x1: torch.Tensor) -> None:
        if x0.shape != x1.shape:
            raise ValueError(f"LPIPS: images differ in shape, {tuple(x0.shape)} vs {tuple(x1.shape)}")
        if x0.dim() != 4 or x0.shape[1] != 3:
            raise ValueError(f"LPIPS: expected (N, 3, H, W) RGB tensors, got {tuple(x0.shape)} "
                             "(repeat a grey channel three times first)")
        if min(x0.shape[-2:]) < self.min_side:
            raise ValueError(f"LPIPS-{self.net}: images must be at least {self.min_side} px on each side, "
                             f"got {tuple(x0.shape[-2:])}")

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Trunk activations at the five taps for images in [0, 1]."""
        h = ((2 * x - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        self._check(x0, x1)
        n = x0.shape[0]
        dtype = self.shift.dtype
        feats = self.layer_features(torch.cat([x0, x1]).to(dtype))
        total = x0.new_zeros(n, dtype=dtype)
        for lin, f in zip(self.lins, feats):
            d = (_unit_normalize(f[:n]) - _unit_normalize(f[n:])).pow(2)
            total = total + lin(d).mean((2, 3)).flatten()
        return total


def _lpips_version() -> str:
    try:
        return importlib.metadata.version("lpips")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def load_lpips(net: str = "alex", trunk_path: str | os.PathLike | None = None, *,
               strict: bool | None = None) -> tuple[LPIPS | None, str]:
    """Build :class:`LPIPS` if its weights are on disk.

    Returns ``(model, description of the weights used)``, or
    ``(None, "n/a (no trunk weights)")`` when no ImageNet trunk is found.
    A ``trunk_path`` that does not exist raises ``FileNotFoundError``: an
    explicit request is never silently replaced. ``strict`` (default
    ``$RESTORE_REQUIRE_WEIGHTS``, see :mod:`restore_lib.weights`): missing
    weights raise :class:`restore_lib.weights.MissingWeightsError` instead of
    giving "n/a".
    """
    spec = _check_net(net)
    path, _ = find_weights(spec["torchvision"], trunk_path)
    if path is None:
        if weights_required(strict):
            raise MissingWeightsError(f"LPIPS-{net}: {missing_weights_message(spec['torchvision'])}; "
                                      f"${REQUIRE_ENV}=1 / strict=True refuses to report it as n/a")
        return None, NO_TRUNK
    try:
        lin = _lin_weights_path(net)
    except LPIPSWeightsError as e:
        if weights_required(strict):
            raise MissingWeightsError(str(e)) from e
        return None, f"n/a ({e})"
    model = LPIPS(net, trunk_path=trunk_path, lin_path=lin)  # repeats the lookup, so it names the source
    return model, (f"LPIPS v0.1 ({net}): trunk from {model.trunk_source}; "
                   f"linear heads from the lpips {_lpips_version()} wheel")


def lpips_score(pred: torch.Tensor, target: torch.Tensor, model: LPIPS) -> float:
    """Mean over images of the LPIPS distance between (N, 3, H, W) tensors in
    [0, 1] (per-image values averaged, as papers report). Clamp model
    outputs to [0, 1] first; other ranges raise."""
    if not isinstance(model, LPIPS):
        raise TypeError(f"lpips_score: model must be restore_lib.lpips.LPIPS, got {type(model).__name__} "
                        "(use load_lpips(); it returns None when no trunk weights exist)")
    if pred.numel() == 0:
        raise ValueError(f"lpips_score: empty input of shape {tuple(pred.shape)}")
    for name, t in (("pred", pred), ("target", target)):
        lo, hi = t.min().item(), t.max().item()
        if lo < 0 or hi > 1:
            raise ValueError(f"lpips_score: {name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); "
                             "clamp it, or convert from [-1, 1] with (x + 1) / 2")
    device = model.shift.device
    with torch.no_grad():
        return model(pred.to(device), target.to(device)).mean().item()

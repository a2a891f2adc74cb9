"""What is benchmarked: one :class:`Case` per (model, preset), how to feed it,
and the published / reference figures it is compared with.

Input convention (``architectures.md`` section 1 and 3): restoration models see
an ``S x S`` image (S = 256, ``--quick``: 32); super-resolution models see an
``s x s`` low-resolution image (s = 64, ``--quick``: 16) and produce
``scale * s``; the SRGAN discriminator sees a 96 x 96 high-resolution image
(its training crop). Models whose ``forward`` needs more than one image are
fed explicitly by :func:`make_inputs`:

* ``diffir_s1``: ``forward(lq, gt)``, ``gt`` is ``scale`` times the LQ size;
* ``diffir_s2``: inference ``forward(lq)`` samples the prior from noise;
  training ``forward(lq, ipr_target=z)`` with ``z`` of shape (N, ipr_dim);
* ``ptgrm``: ``forward(initial, degraded, prior)`` with a (N, prior_dim) prior.

Every registered model has at least one case (a test checks it); nothing is
skipped silently: a measurement that cannot be made is written into the
table with the reason.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import torch
import torch.nn as nn

from restore_lib.models import list_models, model_presets

__all__ = ["Reference", "Case", "CASES", "KINDS", "select_cases", "input_hw", "make_inputs",
           "training_loss", "to_channels_last", "output_tensors", "quick_preset", "check_cases_cover_registry"]

#: how a model is called (see the module docstring)
KINDS = ("image", "diffir_s1", "diffir_s2", "ptgrm")

_ARCH = "architectures.md"


@dataclasses.dataclass(frozen=True)
class Reference:
    """A compute figure from outside this repository.

    ``source`` is ``"published"`` (paper / README) or ``"reference
    measurement"`` (counted on the official code, ``architectures.md``).
    ``input_hw`` is the network input at which the figure holds (the LR size
    for super-resolution); our own count is repeated at that size.
    """

    gmacs: float
    input_hw: tuple[int, int]
    counter: str          # "torch FlopCounterMode", "ptflops", "paper", ...
    source: str           # "published" | "reference measurement"
    citation: str
    note: str = ""

    def label(self) -> str:
        h, w = self.input_hw
        return f"{self.gmacs:g} G @{h}x{w} ({self.counter}; {self.source}: {self.citation})"


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked configuration: ``build_model(model, preset)``."""

    model: str
    preset: str = "default"
    kind: str = "image"
    channels: int = 3
    #: fixed input size (SRGAN discriminator); otherwise chosen by :func:`input_hw`
    fixed_hw: tuple[int, int] | None = None
    #: parameter count of the official code (architectures.md), None if there is none
    reference_params: int | None = None
    #: a published parameter figure as text (e.g. "897K, paper, excl. rel-pos bias")
    published_params: str = ""
    references: tuple[Reference, ...] = ()
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}:{self.preset}"


def _ref(gmacs, hw, counter, source, citation, note=""):
    return Reference(float(gmacs), (int(hw[0]), int(hw[1])), counter, source, citation, note)


_TORCH, _PTF = "torch FlopCounterMode", "ptflops"
_MEAS = "reference measurement"

#: the benchmarked configurations: every registered default plus notable presets
CASES: tuple[Case, ...] = (
    Case("baseline_cnn", note="course model; no published figure"),
    Case("diffir_s1", kind="diffir_s1", reference_params=26_742_206,
         note="deblur stage 1; forward(lq, gt); no published compute figure"),
    Case("diffir_s1", "sr", kind="diffir_s1", reference_params=24_801_478,
         note="x4 SR stage 1; forward(lq, gt) with gt 4x the LR size; no published compute figure"),
    Case("diffir_s2", kind="diffir_s2", reference_params=26_911_934,
         references=(_ref(121.0, (256, 256), _TORCH, _MEAS, f"{_ARCH} s11"),),
         note="deblur stage 2; inference samples the IPR (T=4 steps); training forward(lq, ipr_target)"),
    Case("diffir_s2", "sr", kind="diffir_s2", reference_params=24_971_206,
         references=(_ref(45.2, (64, 64), _TORCH, _MEAS, f"{_ARCH} s11"),
                     _ref(722.5, (256, 256), _TORCH, _MEAS, f"{_ARCH} s11"),
                     _ref(740.0, (256, 256), "paper Mult-Adds", "published",
                          "DiffIR paper, real-world x4 table (0.74 T)")),
         note="x4 SR stage 2"),
    Case("fsrcnn", channels=1, reference_params=12_809, published_params="12,464 (paper: conv/deconv weights only)",
         references=(_ref(0.82, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3",
                          note="x3 port; our default is x4 (the deconvolution runs at the larger output)"),
                     _ref(0.85, (256, 256), _PTF, _MEAS, f"{_ARCH} s3", note="x3 port")),
         note="Y channel (1 input channel)"),
    Case("nafnet", reference_params=17_111_907,
         references=(_ref(15.96, (256, 256), _TORCH, _MEAS, f"{_ARCH} s7"),
                     _ref(16.11, (256, 256), _PTF, _MEAS, f"{_ARCH} s7")),
         note="NAFNet-GoPro-width32"),
    Case("nafnet", "width64", reference_params=67_888_835,
         references=(_ref(63.05, (256, 256), _TORCH, _MEAS, f"{_ARCH} s7"),
                     _ref(63.36, (256, 256), _PTF, _MEAS, f"{_ARCH} s7"),
                     _ref(65.0, (256, 256), "papers' GMACs", "published", f"quoted by later papers ({_ARCH} s7)")),
         note="NAFNet-GoPro-width64"),
    Case("nafnet_baseline", note="no published compute figure"),
    Case("promptir", reference_params=35_592_263,
         references=(_ref(172.71, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3"),
                     _ref(158.41, (256, 256), _PTF, _MEAS, f"{_ARCH} s3"),
                     _ref(172.71, (256, 256), "GFLOPs (= torch MACs)", "published", "DPMambaIR Tab. IV")),
         note="decoder=True"),
    Case("promptir_csa", note="course variant (cross-scale attention); no published figure"),
    Case("ptgrm", kind="ptgrm", reference_params=671_735, published_params="+0.67 M (paper Tab. 2)",
         references=(_ref(1.91, (256, 256), _TORCH, _MEAS, f"{_ARCH} s12"),),
         note="forward(initial, degraded, prior) with a (N, 512) CLIP-sized prior"),
    Case("restormer", reference_params=26_126_644,
         references=(_ref(154.88, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3"),
                     _ref(141.2, (256, 256), _PTF, _MEAS, f"{_ARCH} s3"),
                     _ref(140.0, (256, 256), "GFLOPs (= MACs)", "published", "Restormer paper Fig. 1 (about 140)"))),
    Case("srgan_discriminator", fixed_hw=(96, 96), reference_params=23_565_505,
         references=(_ref(0.88, (96, 96), _TORCH, _MEAS, f"{_ARCH} s10"),),
         note="96x96 HR input -> one logit"),
    Case("srresnet", reference_params=1_549_462,
         references=(_ref(9.09, (64, 64), _TORCH, _MEAS, f"{_ARCH} s10"),
                     _ref(145.4, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3 (16 x the LR-64 value)"))),
    Case("stripformer", reference_params=19_708_611, published_params="20 M (paper)",
         references=(_ref(154.7, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3"),
                     _ref(155.9, (256, 256), _PTF, _MEAS, f"{_ARCH} s3"))),
    Case("swinir", reference_params=11_900_199,
         references=(_ref(856.9, (256, 256), _TORCH, _MEAS, f"{_ARCH} s3"),
                     _ref(802.5, (256, 256), "conv+linear only", _MEAS, f"{_ARCH} s8"),
                     _ref(788.6, (256, 256), "FLOPs (= MACs)", "published", "SwinIR README efficiency table")),
         note="classical x4, img_size 48"),
    Case("swinir", "lightweight_x4", reference_params=929_628,
         published_params="897K (paper, excl. 32,400 rel-pos bias params)",
         references=(_ref(62.7, (180, 320), _TORCH, _MEAS, f"{_ARCH} s3"),
                     _ref(53.5, (180, 320), _PTF, _MEAS, f"{_ARCH} s3"),
                     _ref(49.6, (180, 320), "Mult-Adds", "published", "SwinIR paper (1280x720 output)"))),
)

#: quick mode: the CPU-profile preset of each model (fsrcnn/ptgrm presets are already tiny)
_QUICK_PRESET = {"baseline_cnn": "tiny", "diffir_s1:sr": "sr_small", "diffir_s2:sr": "sr_small"}


def quick_preset(case: Case) -> str:
    """The preset used for ``case`` in ``--quick`` mode: ``small`` where it exists."""
    if case.key in _QUICK_PRESET:
        return _QUICK_PRESET[case.key]
    if case.model in _QUICK_PRESET:
        return _QUICK_PRESET[case.model]
    return "small" if "small" in model_presets(case.model) else case.preset


def select_cases(names: Sequence[str] | None = None, cases: Iterable[Case] = CASES) -> list[Case]:
    """Cases whose model name or ``model:preset`` key is in ``names`` (all when None).

    Unknown names raise ``ValueError`` listing what is available.
    """
    cases = list(cases)
    if not names:
        return cases
    known_models = set(list_models())
    chosen, unknown = [], []
    for name in names:
        hits = [c for c in cases if name in (c.model, c.key)]
        if not hits and ":" in name and name.split(":")[0] in known_models:
            model, preset = name.split(":", 1)
            if preset not in model_presets(model):
                raise ValueError(f"--models: model {model!r} has no preset {preset!r}; "
                                 f"presets: {', '.join(sorted(model_presets(model)))}")
            base = next((c for c in cases if c.model == model), Case(model))
            hits = [dataclasses.replace(base, preset=preset, references=(), reference_params=None,
                                        published_params="", note="")]
        if not hits:
            unknown.append(name)
        chosen += [c for c in hits if c not in chosen]
    if unknown:
        keys = ", ".join(c.key for c in cases)
        raise ValueError(f"--models: unknown name(s) {', '.join(unknown)}; give a model name or model:preset "
                         f"(benchmarked: {keys})")
    return chosen


def input_hw(case: Case, model: nn.Module, *, image_size: int, sr_size: int) -> tuple[int, int]:
    """The network input size: fixed, the LR size for SR (scale > 1), else the image size."""
    if case.fixed_hw is not None:
        return case.fixed_hw
    s = sr_size if int(getattr(model, "scale", 1)) > 1 else image_size
    return (s, s)


def _rand(shape, device, dtype, generator):
    if str(device) == "meta":
        return torch.empty(shape, device="meta", dtype=dtype)
    return torch.rand(shape, generator=generator, dtype=dtype).to(device)


def make_inputs(case: Case, model: nn.Module, batch: int, hw: tuple[int, int], *, device="cpu",
                train: bool = False, seed: int = 0, dtype=torch.float32) -> tuple[tuple, dict[str, Any]]:
    """Positional and keyword arguments of ``model.forward`` for one batch.

    Images are uniform in [0, 1] (``seed`` makes them reproducible); on the
    ``meta`` device they are shape-only tensors for counting.
    """
    if case.kind not in KINDS:
        raise ValueError(f"case {case.key}: unknown kind {case.kind!r}; expected one of {KINDS}")
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    x = _rand((batch, case.channels, h, w), device, dtype, g)
    scale = int(getattr(model, "scale", 1))
    if case.kind == "image":
        return (x,), {}
    if case.kind == "diffir_s1":
        gt = _rand((batch, case.channels, h * scale, w * scale), device, dtype, g)
        return (x, gt), {}
    if case.kind == "diffir_s2":
        if train:
            z = _rand((batch, int(model.ipr_dim)), device, dtype, g)
            return (x,), {"ipr_target": z}
        return (x,), ({} if str(device) == "meta" else {"generator": seed})
    # ptgrm: the initial restoration and the degraded image have the same size
    degraded = _rand((batch, case.channels, h, w), device, dtype, g)
    prior = _rand((batch, int(model.prior_dim)), device, dtype, g)
    return (x, degraded, prior), {}


def output_tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a forward output (a tensor, or a tuple/list of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in output_tensors(o)]
    raise TypeError(f"forward returned {type(out).__name__}; expected a tensor or a tuple of tensors")


def training_loss(out: Any) -> torch.Tensor:
    """A surrogate loss for the forward+backward timing: the sum of the means
    of all floating outputs (the backward cost does not depend on the loss)."""
    tensors = [t for t in output_tensors(out) if t.is_floating_point() and t.requires_grad]
    if not tensors:
        raise ValueError("no output requires grad: nothing to backpropagate")
    return sum(t.float().mean() for t in tensors)


def to_channels_last(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """4-D tensors among the arguments converted to ``channels_last``."""
    def conv(v):
        return v.contiguous(memory_format=torch.channels_last) if isinstance(v, torch.Tensor) and v.dim() == 4 else v
    return tuple(conv(a) for a in args), {k: conv(v) for k, v in kwargs.items()}


def check_cases_cover_registry(cases: Iterable[Case] = CASES) -> list[str]:
    """Registered models without any case (should be empty)."""
    have = {c.model for c in cases}
    return [m for m in list_models() if m not in have]


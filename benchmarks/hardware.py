"""Peak dense throughput of known GPUs, and model FLOP utilisation (MFU).

MFU = (model FLOPs per training image x training images per second) / peak.

The model FLOPs per image are counted by ``FlopCounterMode`` on one forward
and backward pass (not the ``3 x forward`` rule of thumb), so MFU says how
close to the hardware limit the *useful* arithmetic runs. Elementwise work
(norms, activations, softmax) is not counted although it takes time, so
memory-bound models (depthwise convs, LayerNorm-heavy transformers) show a
low MFU even when the GPU is busy.

The peaks are vendor datasheet figures for *dense* math (no 2:4 sparsity),
in TFLOP/s. ``bf16`` is the tensor-core peak; ``tf32`` the tensor-core peak
for float32 inputs rounded to TF32 (what cuDNN convolutions use by default);
``fp32`` the CUDA-core peak. An unknown GPU gives MFU ``"n/a (unknown peak)"``
(pass ``--peak-tflops`` to ``benchmarks.run`` to supply one).
"""
from __future__ import annotations

import re

__all__ = ["PEAK_TFLOPS", "lookup_peak", "mfu", "format_mfu", "UNKNOWN_PEAK"]

UNKNOWN_PEAK = "n/a (unknown peak)"

#: (name pattern, {precision: dense TFLOP/s}, datasheet label); first match wins
PEAK_TFLOPS: tuple[tuple[str, dict[str, float], str], ...] = (
    (r"\bMIG\b", {}, "MIG slice: a fraction of the GPU, peak unknown"),
    (r"H200.*NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}, "NVIDIA H200 NVL datasheet (dense)"),
    (r"H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}, "NVIDIA H200 SXM datasheet (dense)"),
    (r"H100.*(PCIe|PCIE)", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}, "NVIDIA H100 PCIe datasheet (dense)"),
    (r"H100.*NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}, "NVIDIA H100 NVL datasheet (dense)"),
    (r"H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}, "NVIDIA H100 SXM datasheet (dense)"),
    (r"A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}, "NVIDIA A100 datasheet (dense)"),
    (r"\bL4\b", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}, "NVIDIA L4 datasheet (dense)"),
    (r"RTX 4090", {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6}, "NVIDIA Ada whitepaper, RTX 4090 (dense)"),
)


def lookup_peak(device_name: str, precision: str) -> tuple[float | None, str]:
    """Peak dense TFLOP/s of ``device_name`` at ``precision`` (``bf16``,
    ``tf32`` or ``fp32``), and where it comes from; ``(None, reason)`` if unknown."""
    if precision not in ("bf16", "tf32", "fp32"):
        raise ValueError(f"unknown precision {precision!r}; expected bf16, tf32 or fp32")
    for pattern, peaks, label in PEAK_TFLOPS:
        if re.search(pattern, device_name or ""):
            if precision in peaks:
                return peaks[precision], label
            return None, f"{label}: no {precision} peak"
    return None, f"{device_name!r} is not in benchmarks/hardware.py PEAK_TFLOPS"


def mfu(flops_per_image: float | None, images_per_s: float | None, peak_tflops: float | None) -> float | None:
    """Fraction of the peak reached by the counted model FLOPs (None if any input is missing)."""
    if not flops_per_image or not images_per_s or not peak_tflops:
        return None
    return flops_per_image * images_per_s / (peak_tflops * 1e12)


def format_mfu(value: float | None, peak_tflops: float | None) -> str:
    """``"12.3%"``, or why there is no value."""
    if peak_tflops is None:
        return UNKNOWN_PEAK
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%"

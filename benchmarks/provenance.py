"""Provenance of a benchmark run: where, with what, when and how it ran.

Every table written by the benchmarks carries these fields (as columns in the
CSV, as a header in the Markdown, and in full in ``provenance_*.json``).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys

import torch

from restore_lib.utils import git_info

__all__ = ["cpu_model", "device_name", "collect", "collect_in_child", "command_line", "summary_line", "CSV_FIELDS"]

#: provenance fields repeated in every CSV row
CSV_FIELDS = ("device", "device_name", "torch", "threads", "dtype", "git_commit", "date", "command")


def cpu_model() -> str:
    """The CPU model string (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: str | torch.device) -> str:
    """GPU name for CUDA devices (initialises CUDA), CPU model otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def command_line(argv: list[str] | None = None, module: str = "benchmarks.run") -> str:
    """The command as a user would type it: ``python -m <module> <args>``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "-m", module, *argv])


def collect(device: str | torch.device, *, dtype: str = "float32", command: str = "",
            extra: dict | None = None) -> dict:
    """All provenance fields. Call it where the measurements run (a CUDA
    query initialises CUDA in this process)."""
    device = torch.device(device)
    git = git_info()
    info = {
        "device": device.type,
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "dtype": dtype,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        })
    if extra:
        info.update(extra)
    return info


def collect_in_child(device: str, command: str, threads: int | None) -> dict:
    """:func:`collect` after applying the run's thread setting (the target of an
    isolated child, so that the parent never initialises CUDA)."""
    if threads:
        torch.set_num_threads(int(threads))
    return collect(device, dtype="float32", command=command)


def summary_line(info: dict) -> str:
    """One Markdown paragraph naming every provenance field of the tables."""
    commit = str(info.get("git_commit", "unknown"))[:10]
    dirty = " (uncommitted changes)" if info.get("git_dirty") else ""
    load = info.get("load_average_1_5_15")
    load_s = f", load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at start" if load else ""
    parts = [
        f"device **{info.get('device')}** ({info.get('device_name')})",
        f"torch {info.get('torch')}",
        f"{info.get('threads')} threads",
        f"dtype {info.get('dtype')}",
        f"commit `{commit}`{dirty}",
        f"date {info.get('date')}",
    ]
    if info.get("device") == "cuda":
        parts.append(f"CUDA {info.get('cuda')}, cuDNN TF32 {info.get('cudnn_allow_tf32')}, "
                     f"matmul TF32 {info.get('matmul_allow_tf32')}")
    return ("*Provenance:* " + ", ".join(parts) + f"{load_s}. *Command:* `{info.get('command')}`")

"""Small utilities: repository paths, seeding, device choice, atomic writes,
hashes and git provenance."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["repo_root", "seed_everything", "pick_device", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "atomic_torch_save", "sha256_file", "sha256_bytes", "git_info", "lib_hash",
           "runs_dir", "read_json", "resolve_data_root"]

PACKAGE_DIR = Path(__file__).resolve().parent


def _checkout_root() -> Path | None:
    """The folder holding pyproject.toml above the package (a checkout or an
    editable install), or None."""
    for parent in [PACKAGE_DIR, *PACKAGE_DIR.parents]:
        if (parent / "pyproject.toml").is_file() and (parent / "restore_lib").is_dir():
            return parent
    return None


def repo_root() -> Path:
    """The repository root: the folder holding pyproject.toml above the package
    (editable install), else the current working directory."""
    return _checkout_root() or Path.cwd()


def resolve_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """What a ``data_root`` names, the same from any working directory: an
    absolute path as it is (``~`` expanded), a relative one under the
    repository root (never the current directory: notebooks run in
    ``notebooks/``, scripts wherever they are started). None stays None (the
    embedded dataset). Without a checkout a relative path is an error."""
    if data_root is None:
        return None
    path = Path(data_root).expanduser()
    if path.is_absolute():
        return path
    root = _checkout_root()
    if root is None:
        raise ValueError(f"data_root {str(data_root)!r} is relative, but restore_lib is not in a checkout "
                         f"({PACKAGE_DIR}), so there is no repository root to resolve it against: pass an "
                         f"absolute path")
    return root / path


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch (all devices). With ``deterministic``,
    ask cuDNN for deterministic kernels (CPU results are deterministic anyway;
    seeds do not make CPU and GPU results identical)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda, then mps, then cpu; anything else is passed to torch.device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return dev


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file next to ``path`` (ending in ``suffix``, so writers that
    go by the extension pick the right format): write it inside the ``with``
    block; on success it replaces ``path`` (``os.replace``), on any error it
    is removed. ``path`` is therefore either complete or untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(fd, 0o666 & ~_umask())     # mkstemp makes 0600; results and checkpoints are for sharing
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that the file is either complete or absent."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary file and ``os.replace``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


#: the largest JSON file read (metrics files and notebooks are far smaller)
MAX_JSON_BYTES = 32 * 2 ** 20


def read_json(path: str | os.PathLike, error: type[Exception], what: str = "JSON",
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The parsed JSON file ``path``. A missing, oversized (over ``max_bytes``),
    unparsable, absurdly nested file, or one with a number Python cannot read,
    raises ``error`` with a message that names the file (``what`` names the kind
    of file); nothing is read whole before its size is known."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path}: {size:,} bytes, over the limit of {max_bytes:,} bytes")
    try:
        return safe_json_loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid {what} ({e})") from e
    except JSONTooDeep as e:
        raise error(f"{path}: {what} nested too deeply to read ({e})") from e
    except ValueError as e:       # e.g. an integer with thousands of digits
        raise error(f"{path}: unreadable number in the {what} ({e})") from e


#: limits of :func:`safe_json_loads`
MAX_JSON_DEPTH = 64
MAX_JSON_NUMBER_CHARS = 40


class JSONTooDeep(ValueError):
    """A JSON text nested deeper than :data:`MAX_JSON_DEPTH`."""


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of the brackets of a JSON text (strings skipped), counted without recursion;
    raises :class:`JSONTooDeep` as soon as it exceeds ``limit``."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > limit:
            raise JSONTooDeep(f"more than {limit} levels of brackets")
        deepest = max(deepest, depth)
    return deepest


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_JSON_NUMBER_CHARS:
        raise ValueError(f"an integer with {len(s.lstrip('-'))} digits (at most {MAX_JSON_NUMBER_CHARS})")
    return int(s)


def _parse_float(s: str) -> float:
    if len(s) > MAX_JSON_NUMBER_CHARS:
        raise ValueError(f"a number written with {len(s)} characters (at most {MAX_JSON_NUMBER_CHARS})")
    v = float(s)
    if math.isinf(v):
        raise ValueError(f"{s} is too large for a float (write Infinity for an infinite value)")
    return v


def safe_json_loads(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses, with a ValueError, what a hostile file could use to crash a reader:
    nesting deeper than ``max_depth`` (checked before parsing, no recursion), integers of more than
    :data:`MAX_JSON_NUMBER_CHARS` digits and float literals that overflow. NaN and Infinity are allowed
    (metrics.json uses them, e.g. the PSNR of identical images)."""
    json_depth(text, max_depth)
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def git_info(root: str | os.PathLike | None = None) -> dict:
    """``{"commit": sha or "unknown", "dirty": bool or None}`` of the repo."""
    root = Path(root or repo_root())
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


#: Modules that only lay out, grade, clean or orchestrate results and cannot change a number a run computes.
#: ``lib_hash`` leaves them out, so a new table layout or a grader fix does not make every committed
#: reference look like it came from other code (the grader flags a run whose hash differs from its reference's).
PRESENTATION_MODULES = ("viz.py", "course/assignments.py", "course/env_info.py", "course/findings.py",
                        "course/grade.py", "course/nbclean.py", "course/published.py", "course/references.py",
                        "course/rehearsal.py", "course/reproduce.py", "course/weights_check.py")


def lib_hash(package_dir: str | os.PathLike | None = None) -> str:
    """sha256 over the sources of restore_lib that compute results (every module but
    :data:`PRESENTATION_MODULES`); it identifies the code even when the working tree is dirty."""
    root = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        if rel in PRESENTATION_MODULES:
            continue
        h.update(rel.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def runs_dir(report: str) -> Path:
    """Where a report's training runs (checkpoints) go: ``$RESTORE_RUNS_DIR/<report>``,
    else ``<repo root>/runs/<report>`` (never committed)."""
    base = os.environ.get("RESTORE_RUNS_DIR")
    return (Path(base) if base else repo_root() / "runs") / report

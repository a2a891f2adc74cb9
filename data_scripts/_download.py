"""Verified downloads and safe archive extraction for the dataset scripts.

* :func:`download` streams a URL to a temporary file next to the target,
  then checks its SHA-256 **after** the download (and again on every cache
  hit) before the file takes its final name. A mismatch removes the file and
  raises :class:`VerificationError`.
* When no expected hash is known, nothing is trusted silently: the computed
  hash is printed and :class:`HashRequired` is raised, unless the caller
  passes ``accept_hash=True`` (the scripts' ``--accept-hash``), in which case
  the hash is recorded in ``<file>.sha256`` and checked on later runs. The
  unconfirmed download is kept as ``<file>.unverified`` so a rerun with the
  hash does not download again.
* :func:`safe_extract` checks every member of a zip or tar archive before
  writing anything: absolute paths, ``..`` components, links whose target
  leaves the destination, and device or FIFO files are rejected with
  :class:`UnsafeArchiveError`.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

__all__ = ["VerificationError", "HashRequired", "UnsafeArchiveError", "sha256_file", "normalise_hash",
           "read_hash_file", "download", "verify_file", "safe_extract"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class VerificationError(RuntimeError):
    """A file's SHA-256 differs from the expected one."""


class HashRequired(RuntimeError):
    """No expected SHA-256 was given and ``accept_hash`` was not set."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would escape the destination or is a special file."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalise_hash(value: str | None, what: str = "sha256") -> str | None:
    """Lower-case 64-hex string, or None; anything else is an error."""
    if value is None:
        return None
    v = value.strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not _HEX64.match(v):
        raise ValueError(f"{what}: {value!r} is not a 64-character hexadecimal SHA-256")
    return v


def read_hash_file(path: str | os.PathLike) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <file name>`` per line, ``*`` for
    binary mode allowed); returns {file name: hex}. A file holding a single
    bare hash maps the key ``""`` to it."""
    path = Path(path)
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        name = parts[1].lstrip("*").strip() if len(parts) == 2 else ""
        out[Path(name).name if name else ""] = normalise_hash(parts[0], f"{path}:{n}")
    if not out:
        raise ValueError(f"{path}: no hashes found")
    return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _accepted(path: Path) -> str | None:
    side = _sidecar(path)
    return read_hash_file(side).get(path.name) if side.is_file() else None


def _decide(path: Path, actual: str, expected: str | None, accept_hash: bool, source: str,
            remove_on_mismatch: bool) -> None:
    """Raise unless ``actual`` is acceptable; record an accepted hash."""
    if expected is not None:
        if actual != expected:
            if remove_on_mismatch:
                path.unlink(missing_ok=True)
            raise VerificationError(
                f"{source}: SHA-256 mismatch for {path.name}: expected {expected}, got {actual}"
                + ("; the file was removed" if remove_on_mismatch else ""))
        return
    if not accept_hash:
        raise HashRequired(
            f"{source}: no expected SHA-256 is known for {path.name}. Its SHA-256 is\n    {actual}\n"
            f"Check it against the official source if you can, then re-run with --sha256 {actual} "
            f"(or a --sha256-file), or with --accept-hash to trust this download.")
    print(f"accepted {path.name} with SHA-256 {actual} (--accept-hash); recorded in {_sidecar(path).name}")


def verify_file(path: str | os.PathLike, expected: str | None, accept_hash: bool = False) -> str:
    """Check a local file (e.g. an archive the user downloaded by hand).
    Never deletes it. Returns its SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    expected = normalise_hash(expected) or _accepted(path)
    actual = sha256_file(path)
    _decide(path, actual, expected, accept_hash, str(path), remove_on_mismatch=False)
    return actual


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *, accept_hash: bool = False,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256 (see module doc).

    ``sha256=None`` uses a hash accepted on an earlier run (``dest.sha256``);
    without one, :class:`HashRequired` is raised unless ``accept_hash``.
    """
    dest = Path(dest)
    expected = normalise_hash(sha256) or _accepted(dest)
    if dest.is_file():  # cache hit: verified again, never trusted blindly
        actual = sha256_file(dest)
        _decide(dest, actual, expected, accept_hash, f"{dest} (cached)", remove_on_mismatch=True)
        _record(dest, actual)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    pending = dest.with_name(dest.name + ".unverified")
    if not pending.is_file():
        _fetch(url, pending, timeout)
    actual = sha256_file(pending)
    _decide(pending, actual, expected, accept_hash, url, remove_on_mismatch=True)
    os.replace(pending, dest)
    _record(dest, actual)
    return dest


def _record(dest: Path, digest: str | None) -> None:
    if digest is not None:
        _sidecar(dest).write_text(f"{digest}  {dest.name}\n")


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target`` atomically (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, length=1 << 20)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ archives
def _check_name(name: str, archive: Path) -> str:
    """The member's normalised relative path, or an error."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL byte in its name")
    unix = name.replace("\\", "/")
    if unix.startswith("/") or re.match(r"^[A-Za-z]:", unix):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in unix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains a '..' component")
    return "/".join(parts)


def _inside(rel_target: str) -> bool:
    norm = posixpath.normpath(rel_target)
    return not (norm == ".." or norm.startswith("../") or norm.startswith("/"))


def _check_tar_member(m: tarfile.TarInfo, archive: Path) -> None:
    rel = _check_name(m.name, archive)
    if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
        raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or FIFO file")
    if m.issym():
        link = m.linkname.replace("\\", "/")
        if link.startswith("/") or not _inside(posixpath.join(posixpath.dirname(rel), link)):
            raise UnsafeArchiveError(
                f"{archive}: symlink {m.name!r} -> {m.linkname!r} points outside the destination")
    elif m.islnk():
        link = m.linkname.replace("\\", "/")
        if link.startswith("/") or not _inside(link):
            raise UnsafeArchiveError(
                f"{archive}: hard link {m.name!r} -> {m.linkname!r} points outside the destination")
    elif not (m.isfile() or m.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {m.name!r} has an unsupported type")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a zip or tar (any compression) into ``dest`` after checking
    every member; an unsafe archive raises before anything is written."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_name(info.filename, archive)
                mode = (info.external_attr >> 16) & 0o170000
                if mode in (0o120000,):  # a symlink stored by Info-ZIP; zipfile would write it as a file
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
                if mode in (0o020000, 0o060000, 0o010000):
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device or FIFO file")
            dest.mkdir(parents=True, exist_ok=True)
            zf.extractall(dest, members=infos)
        return dest
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"{archive}: neither a zip nor a readable tar archive ({e})") from e
    with tf:
        members = tf.getmembers()
        links: set[str] = set()
        for m in members:
            _check_tar_member(m, archive)
            rel = _check_name(m.name, archive)
            parents = rel.split("/")[:-1]
            if any("/".join(parents[:i + 1]) in links for i in range(len(parents))):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is written through a symbolic link")
            if m.issym():
                links.add(rel)
        dest.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second, independent check
            tf.extractall(dest, members=members, filter="data")
        else:
            tf.extractall(dest, members=members)
    return dest

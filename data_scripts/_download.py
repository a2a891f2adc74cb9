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
  writing anything: absolute paths, ``..`` components, symlinks whose target
  leaves the destination once earlier links are followed (chains), hard
  links to anything but a regular file stored earlier, writes through a
  link, device or FIFO files, and archives above the size, member-count or
  (zip) compression-ratio limits are rejected with
  :class:`UnsafeArchiveError`; bad CRCs and truncated archives raise
  :class:`CorruptArchiveError`, one line naming the archive.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

__all__ = ["VerificationError", "HashRequired", "UnsafeArchiveError", "CorruptArchiveError", "sha256_file",
           "normalise_hash", "read_hash_file", "download", "verify_file", "safe_extract"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class VerificationError(RuntimeError):
    """A file's SHA-256 differs from the expected one."""


class HashRequired(RuntimeError):
    """No expected SHA-256 was given and ``accept_hash`` was not set."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would escape the destination or is a special file,
    or the archive exceeds the size / member-count / ratio limits."""


class CorruptArchiveError(UnsafeArchiveError):
    """A corrupt or truncated archive (bad CRC, early end of data, not an
    archive at all); a subclass so that handlers of the above catch it."""


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
    """The hash recorded for ``path`` by an earlier run (``<path>.sha256``)."""
    side = _sidecar(path)
    return read_hash_file(side).get(path.name) if side.is_file() else None


def _expectation(path: Path, given: str | None) -> tuple[str | None, str]:
    """(expected hash, where it comes from) for ``path``: the given one, else
    the one recorded next to it by an earlier run."""
    given = normalise_hash(given)
    if given is not None:
        return given, "given"
    recorded = _accepted(path)
    if recorded is not None:
        return recorded, f"recorded in {_sidecar(path)} by an earlier run; delete that file to accept a new version"
    return None, ""


def _decide(path: Path, actual: str, expected: str | None, origin: str, accept_hash: bool, source: str,
            remove_on_mismatch: bool) -> bool:
    """Raise unless ``actual`` is acceptable. Returns True when it was
    accepted without an expected hash (``accept_hash``): the caller records
    it."""
    if expected is not None:
        if actual != expected:
            if remove_on_mismatch:
                path.unlink(missing_ok=True)
            raise VerificationError(
                f"{source}: SHA-256 mismatch for {path.name}: expected {expected} ({origin}), got {actual}"
                + ("; the file was removed" if remove_on_mismatch else ""))
        return False
    if not accept_hash:
        raise HashRequired(
            f"{source}: no expected SHA-256 is known for {path.name}. Its SHA-256 is\n    {actual}\n"
            f"Check it against the official source if you can, then re-run with --sha256 {actual} "
            f"(or a --sha256-file), or with --accept-hash to trust this download.")
    return True


def _record(dest: Path, digest: str) -> Path:
    """Write ``<dest>.sha256`` (sha256sum format) atomically; returns its path."""
    side = _sidecar(dest)
    fd, tmp = tempfile.mkstemp(dir=side.parent, prefix=f".{side.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{digest}  {dest.name}\n")
        os.replace(tmp, side)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return side


def _announce_accepted(dest: Path, digest: str) -> None:
    """Record an accepted hash and say where (or say that it could not be)."""
    try:
        side = _record(dest, digest)
    except OSError as e:
        print(f"accepted {dest.name} with SHA-256 {digest} (--accept-hash), but could NOT record it in "
              f"{_sidecar(dest)} ({e.strerror or e}): later runs need --sha256 {digest}")
        return
    print(f"accepted {dest.name} with SHA-256 {digest} (--accept-hash); recorded in {side}")


def verify_file(path: str | os.PathLike, expected: str | None, accept_hash: bool = False) -> str:
    """Check a local file (e.g. an archive the user downloaded by hand).
    Never deletes it. Without an expected hash, one recorded by an earlier
    ``accept_hash`` run (``<file>.sha256``) is used; ``accept_hash`` with
    neither records the computed hash there. Returns its SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    expected, origin = _expectation(path, expected)
    actual = sha256_file(path)
    if _decide(path, actual, expected, origin, accept_hash, str(path), remove_on_mismatch=False):
        _announce_accepted(path, actual)
    return actual


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *, accept_hash: bool = False,
             timeout: float = 60.0, with_digest: bool = False):
    """Download ``url`` to ``dest`` and verify its SHA-256 (see module doc).

    ``sha256=None`` uses a hash accepted on an earlier run (``dest.sha256``);
    without one, :class:`HashRequired` is raised unless ``accept_hash``.
    Returns ``dest`` (``(dest, sha256)`` with ``with_digest``).
    """
    dest = Path(dest)
    expected, origin = _expectation(dest, sha256)
    if dest.is_file():  # cache hit: verified again, never trusted blindly
        actual = sha256_file(dest)
        accepted = _decide(dest, actual, expected, origin, accept_hash, f"{dest} (cached)",
                           remove_on_mismatch=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        pending = dest.with_name(dest.name + ".unverified")
        if not pending.is_file():
            _fetch(url, pending, timeout)
        actual = sha256_file(pending)
        accepted = _decide(pending, actual, expected, origin, accept_hash, url, remove_on_mismatch=True)
        os.replace(pending, dest)
    if accepted:
        _announce_accepted(dest, actual)
    else:
        _record(dest, actual)  # the verified hash, checked again on every later cache hit
    return (dest, actual) if with_digest else dest


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
#: default limits of :func:`safe_extract` (the scripts' --max-extract-gb etc.)
MAX_EXTRACT_BYTES = 64 << 30
MAX_MEMBERS = 2_000_000
#: a zip member of at least this size may not be compressed more than
#: ``max_ratio`` times (deflate reaches ~1030:1 on constant data; images ~1-3:1)
MAX_ZIP_RATIO = 200
RATIO_MIN_BYTES = 1 << 20

_MAX_LINK_HOPS = 64


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


class _Escape(Exception):
    """A path that resolves outside the destination (or loops)."""


def _resolve(path: str, symlinks: dict[str, str]) -> str:
    """Resolve the relative ``path`` inside the destination the way the file
    system will once the archive is extracted: every component that is a
    symlink made by the archive (``symlinks``: member path -> target) is
    replaced by its target, recursively (chains), before any ``..`` applies.
    Returns the physical relative path; raises :class:`_Escape` when it
    leaves the destination, is absolute, or loops."""
    if path.startswith("/"):
        raise _Escape("is absolute")
    todo = list(reversed(path.split("/")))
    cur: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not cur:
                raise _Escape("leaves the destination")
            cur.pop()
            continue
        key = "/".join(cur + [part])
        target = symlinks.get(key)
        if target is None:
            cur.append(part)
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise _Escape("is a symlink loop")
        if target.startswith("/"):
            raise _Escape(f"goes through the absolute symlink {key!r}")
        todo.extend(reversed(target.split("/")))  # relative to the link's folder, i.e. ``cur``
    return "/".join(cur)


def _plan_tar(members: list[tarfile.TarInfo], archive: Path, max_bytes: int, max_members: int) -> None:
    """Check every member against the file system the archive will build,
    before anything is written (no reliance on ``tarfile``'s filters)."""
    if len(members) > max_members:
        raise UnsafeArchiveError(f"{archive}: {len(members)} members, more than the limit of {max_members}")
    total = 0
    kinds: dict[str, str] = {}  # path -> 'dir' | 'file' | 'symlink' | 'hardlink' (implied folders included)
    symlinks: dict[str, str] = {}  # path -> target (relative to the link's folder, '/'-separated)
    for m in members:
        rel = _check_name(m.name, archive)
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or FIFO file")
        if m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
        elif m.isdir():
            kind = "dir"
        elif m.isfile():
            kind = "file"
        else:
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} has an unsupported type")
        if not rel:
            if kind == "dir":
                continue  # "./": the destination itself
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} has an empty name")
        total += m.size if kind == "file" else 0
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive}: unpacks to more than {max_bytes / 2**30:g} GiB "
                                     f"(the limit; raise it with --max-extract-gb if this is expected)")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if kinds.get(parent, "dir") != "dir":
                if kinds[parent] in ("symlink", "hardlink"):
                    raise UnsafeArchiveError(f"{archive}: member {m.name!r} is written through a "
                                             f"{'symbolic' if kinds[parent] == 'symlink' else 'hard'} link")
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is written below the file {parent!r}")
            kinds[parent] = "dir"
        previous = kinds.get(rel)
        if previous is not None and (previous != kind or kind in ("symlink", "hardlink")):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} ({kind}) replaces an earlier {previous} "
                                     f"of the same name")
        link = m.linkname.replace("\\", "/")
        if kind == "symlink":
            try:
                _resolve(posixpath.join(posixpath.dirname(rel), link), symlinks)
            except _Escape as e:
                raise UnsafeArchiveError(
                    f"{archive}: symlink {m.name!r} -> {m.linkname!r} points outside the destination "
                    f"(it {e})") from None
            symlinks[rel] = link
        elif kind == "hardlink":
            target = _check_link_name(link, m, archive)
            if kinds.get(target) != "file":
                tparts = target.split("/")
                via = [p for p in ("/".join(tparts[:i + 1]) for i in range(len(tparts))) if p in symlinks]
                why = (f"goes through the symbolic link {via[0]!r}" if via else
                       "is not a regular file stored earlier in the archive")
                raise UnsafeArchiveError(f"{archive}: hard link {m.name!r} -> {m.linkname!r} refused: its target "
                                         f"{why}")
        kinds[rel] = kind
    # a later symlink can change where an earlier one leads: check them all again on the final tree
    for rel, link in symlinks.items():
        try:
            _resolve(posixpath.join(posixpath.dirname(rel), link), symlinks)
        except _Escape as e:
            raise UnsafeArchiveError(f"{archive}: symlink {rel!r} -> {link!r} points outside the destination "
                                     f"once the archive is extracted (it {e})") from None


def _check_link_name(link: str, m: tarfile.TarInfo, archive: Path) -> str:
    """A hard link's target as a plain relative path (archive root based)."""
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link) or ".." in link.split("/"):
        raise UnsafeArchiveError(
            f"{archive}: hard link {m.name!r} -> {m.linkname!r} points outside the destination")
    return "/".join(p for p in link.split("/") if p not in ("", "."))


def _check_tar_end(tf: tarfile.TarFile, archive: Path) -> None:
    """Refuse a tar cut at a member boundary (``tarfile`` would just stop)
    and a compressed stream whose end or checksum is missing."""
    tf.fileobj.seek(tf.offset)
    marker = tf.fileobj.read(tarfile.BLOCKSIZE)
    if len(marker) < tarfile.BLOCKSIZE or marker.count(0) != tarfile.BLOCKSIZE:
        raise CorruptArchiveError(f"{archive}: truncated tar archive (no end-of-archive marker after "
                                  f"{len(tf.members)} members)")
    while tf.fileobj.read(1 << 20):  # to the end: gzip/bz2/xz check their length and CRC there
        pass


def _plan_zip(zf: zipfile.ZipFile, archive: Path, max_bytes: int, max_members: int,
              max_ratio: float) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > max_members:
        raise UnsafeArchiveError(f"{archive}: {len(infos)} members, more than the limit of {max_members}")
    total = 0
    for info in infos:
        _check_name(info.filename, archive)
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:  # a symlink stored by Info-ZIP; zipfile would write it as a file
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
        if mode in (0o020000, 0o060000, 0o010000):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device or FIFO file")
        total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive}: unpacks to more than {max_bytes / 2**30:g} GiB "
                                     f"(the limit; raise it with --max-extract-gb if this is expected)")
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}"
                f" times ({info.compress_size} -> {info.file_size} bytes), more than the limit of "
                f"{max_ratio:g} (a zip bomb?)")
    return infos


#: what a corrupt or truncated archive raises while it is read
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_EXTRACT_BYTES,
                 max_members: int = MAX_MEMBERS, max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract a zip or tar (any compression) into ``dest`` after checking
    every member; an unsafe archive raises :class:`UnsafeArchiveError` before
    anything is written, a corrupt or truncated one :class:`CorruptArchiveError`
    (before writing for tar, during extraction for a zip member's bad CRC).

    Links are resolved against the tree the archive builds (symlink chains
    included), so the checks do not depend on ``tarfile``'s ``data`` filter,
    which is used in addition where it exists. Archives that unpack to more
    than ``max_bytes`` or hold more than ``max_members`` members, and zip
    members compressed more than ``max_ratio`` times, are refused."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = _plan_zip(zf, archive, max_bytes, max_members, max_ratio)
                dest.mkdir(parents=True, exist_ok=True)
                zf.extractall(dest, members=infos)
        except UnsafeArchiveError:
            raise
        except (*_READ_ERRORS, NotImplementedError, RuntimeError) as e:
            raise CorruptArchiveError(f"{archive}: corrupt, truncated or unsupported zip archive "
                                      f"({_one_line(e)})") from None
        return dest
    try:
        tf = tarfile.open(archive)
    except _READ_ERRORS as e:
        raise CorruptArchiveError(f"{archive}: neither a zip nor a readable tar archive "
                                  f"(corrupt, truncated or another format: {_one_line(e)})") from None
    with tf:
        try:
            members = tf.getmembers()
            _check_tar_end(tf, archive)
        except _READ_ERRORS as e:
            raise CorruptArchiveError(f"{archive}: corrupt or truncated tar archive ({_one_line(e)})") from None
        _plan_tar(members, archive, max_bytes, max_members)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second, independent check
                tf.extractall(dest, members=members, filter="data")
            else:
                tf.extractall(dest, members=members)
        except tarfile.FilterError as e:
            raise UnsafeArchiveError(f"{archive}: refused by tarfile's data filter ({_one_line(e)})") from None
        except _READ_ERRORS as e:
            raise CorruptArchiveError(f"{archive}: extraction failed ({_one_line(e)})") from None
    return dest

"""Helpers shared by the dataset preparation scripts (not run in CI).

Every script gets its input in one of three ways, all verified:

* ``--src DIR``: an already extracted copy (nothing to verify: your files);
* ``--archive FILE``: an archive you downloaded yourself; its SHA-256 is
  checked against ``--sha256``/``--sha256-file``, or printed and refused
  unless ``--accept-hash`` is given;
* ``--url URL`` (or the script's default URL): downloaded into ``--cache``
  and verified the same way (see ``_download.py``).

Every script that writes an output folder builds it with :class:`Stage`:
into a temporary sibling, manifest last, then swapped in, so a rerun never
mixes old and new files and an interrupted run leaves no half folder.
Loaders check such a folder with :func:`verify_prepared` (``_manifest.py``, the
scripts' name for ``restore_lib.data.manifest``, which the library's loaders
use too).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from PIL import Image, UnidentifiedImageError

import _download
from _manifest import MANIFEST_NAME, PrepError, list_files, read_manifest, verify_prepared, write_manifest
from restore_lib.data.manifest import staging_leftovers

__all__ = ["IMAGE_EXTS", "PrepError", "Stage", "verify_prepared", "image_size", "add_source_args",
           "add_extract_args", "extract_limits", "resolve_source", "resolve_input", "obtain_archive",
           "list_images", "place", "check_count", "fail_if", "run_main", "verify_files", "add_output_args",
           "check_link", "find_dir", "pair_folder", "unique_stems", "place_pairs"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def import_restore_lib() -> None:
    """Make ``restore_lib`` importable when run from a plain checkout."""
    try:
        import restore_lib  # noqa: F401
    except ModuleNotFoundError:
        sys.path.insert(0, str(repo_root()))


def default_data_dir() -> Path:
    """``$RESTORE_DATA`` or ``<repo>/data`` (the embedded dataset lives in
    ``<that>/embedded``)."""
    env = os.environ.get("RESTORE_DATA")
    return Path(env) if env else repo_root() / "data"


def add_source_args(ap: argparse.ArgumentParser, *, archive_help: str, default_url: str | None = None,
                    several_archives: bool = False) -> None:
    g = ap.add_argument_group("input (one of)")
    g.add_argument("--src", type=Path, help="an already extracted copy of the dataset")
    g.add_argument("--archive", type=Path, nargs="+" if several_archives else None, help=archive_help)
    g.add_argument("--url", default=default_url,
                   help="download from this URL" + (f" (default {default_url})" if default_url else ""))
    h = ap.add_argument_group("integrity (for --archive and --url)")
    h.add_argument("--sha256", help="expected SHA-256 of the archive")
    h.add_argument("--sha256-file", type=Path, help="sha256sum-style file with the expected hash(es)")
    h.add_argument("--accept-hash", action="store_true",
                   help="no expected hash known: print the computed one, record it and go on")
    ap.add_argument("--cache", type=Path, default=None, help="download folder (default <data>/downloads)")
    add_extract_args(ap)


def add_extract_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("archive limits (zip/tar bombs)")
    g.add_argument("--max-extract-gb", type=float, default=_download.MAX_EXTRACT_BYTES / 2**30,
                   help="refuse an archive that unpacks to more than this many GiB (default %(default)g)")
    g.add_argument("--max-extract-members", type=int, default=_download.MAX_MEMBERS,
                   help="refuse an archive with more members than this (default %(default)d)")
    g.add_argument("--max-zip-ratio", type=float, default=_download.MAX_ZIP_RATIO,
                   help="refuse a zip member (>= 1 MiB) compressed more than this many times (default %(default)g)")


def extract_limits(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``_download.safe_extract`` from the options."""
    if args.max_extract_gb <= 0 or args.max_extract_members <= 0 or args.max_zip_ratio <= 0:
        raise PrepError("--max-extract-gb, --max-extract-members and --max-zip-ratio must be positive")
    return {"max_bytes": int(args.max_extract_gb * 2**30), "max_members": args.max_extract_members,
            "max_ratio": args.max_zip_ratio}


def expected_hash(args: argparse.Namespace, filename: str) -> str | None:
    """The expected SHA-256 of ``filename`` from --sha256 or --sha256-file."""
    if getattr(args, "sha256", None):
        return _download.normalise_hash(args.sha256, "--sha256")
    if getattr(args, "sha256_file", None):
        table = _download.read_hash_file(args.sha256_file)
        if filename in table:
            return table[filename]
        if set(table) == {""}:
            return table[""]
        raise PrepError(f"{args.sha256_file}: no hash listed for {filename} (listed: {', '.join(sorted(table))})")
    return None


def obtain_archive(args: argparse.Namespace, filename: str, url: str | None, official: str) -> tuple[Path, str]:
    """The verified archive ``filename`` from --archive or a download, and
    its SHA-256."""
    if args.archive is not None:
        digest = _download.verify_file(args.archive, expected_hash(args, args.archive.name), args.accept_hash)
        return args.archive, digest
    if url:
        cache = args.cache or default_data_dir() / "downloads"
        return _download.download(url, cache / filename, expected_hash(args, filename),
                                  accept_hash=args.accept_hash, with_digest=True)
    raise PrepError(f"no input given: download the data from {official} and pass --archive FILE "
                    f"(or --src DIR for an extracted copy, or --url URL)")


def verify_files(args: argparse.Namespace, files: list[Path]) -> dict[str, str]:
    """{file name: SHA-256} of local input files (archives, .mat files), each
    checked like ``--archive`` (--sha256 for a single file, --sha256-file by
    name, a hash recorded by --accept-hash, or --accept-hash)."""
    if getattr(args, "sha256", None) and len(files) > 1:
        raise PrepError(f"--sha256 gives one hash for {len(files)} files: list them in --sha256-file")
    seen: dict[str, Path] = {}
    for f in files:
        if f.name in seen:
            raise PrepError(f"{seen[f.name]} and {f}: two inputs with the same file name (hashes are looked up "
                            f"by name); rename one")
        seen[f.name] = f
    return {f.name: _download.verify_file(f, expected_hash(args, f.name), args.accept_hash) for f in files}


def resolve_source(args: argparse.Namespace, filename: str, url: str | None, official: str,
                   workdir: Path) -> tuple[Path, dict]:
    """A folder holding the dataset (--src as is, else the verified archive
    extracted safely into ``workdir``) and its description for the manifest."""
    if args.src is not None:
        if not args.src.is_dir():
            raise PrepError(f"{args.src}: --src is not a folder")
        return args.src, {"src": str(args.src.resolve())}
    archive, digest = obtain_archive(args, filename, url, official)
    folder = _download.safe_extract(archive, workdir, **extract_limits(args))
    source = {"archive": archive.name, "sha256": digest}
    if args.archive is None:
        source["url"] = url
    return folder, source


def resolve_input(args: argparse.Namespace, filename: str, url: str | None, official: str,
                  workdir: Path) -> Path:
    """:func:`resolve_source` without the description."""
    return resolve_source(args, filename, url, official, workdir)[0]


# ------------------------------------------------------------------ staged output
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    """Delete a temporary folder; say so (never silently) if that fails."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        print(f"warning: could not remove {path} ({e}); delete it by hand", file=sys.stderr)


class Stage:
    """Build a prepared folder next to its final place and swap it in.

    ::

        with Stage(out, "prepare_x", VERSION) as st:
            folder, source = resolve_source(args, ..., st.scratch())
            st.place(src_file, "train/degraded/1.png", args.link)
            st.commit(source=source, params={...}, summary={...})

    Files go to a fresh ``<out>.partial-<pid>-XXXX`` in the same parent
    (archives are extracted into ``<out>.extract-<pid>-XXXX``). ``commit``
    writes ``MANIFEST.json`` last, then renames the old ``<out>`` to
    ``<out>.old-<pid>-XXXX``, the new folder to ``<out>``, and deletes the
    old one (restoring it if the rename fails). So a rerun never mixes old
    and new files, and an interrupted run leaves ``<out>`` as it was; its
    leftovers (whose process is gone) are removed by the next run.

    An existing ``<out>`` is only replaced when it is empty or holds a
    manifest written by the same script: a folder the scripts did not make
    is never deleted. Two source files that would get the same output name
    are an error naming both.
    """

    def __init__(self, out: str | os.PathLike, script: str, version: str):
        self.out = Path(out).resolve()  # a symlinked <out>: build next to the real folder
        self.script, self.version = script, version
        self.dir: Path | None = None
        self._scratch: Path | None = None
        self._origin: dict[str, str] = {}
        self._committed = False
        self._made_parent = False

    # -- set-up and clean-up
    def __enter__(self) -> "Stage":
        self._check_replaceable()
        self._made_parent = not self.out.parent.exists()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.out.name}.partial-{os.getpid()}-", dir=self.out.parent))
        os.chmod(self.dir, 0o777 & ~_umask())  # mkdtemp's 0700 would become the dataset's mode
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._scratch is not None:
            _remove(self._scratch)
        if not self._committed and self.dir is not None:
            _remove(self.dir)
            if self._made_parent and not any(self.out.parent.iterdir()):
                self.out.parent.rmdir()
            if exc_type is None:
                raise RuntimeError(f"{self.out}: Stage left without commit(); nothing was written")

    def _check_replaceable(self) -> None:
        out = self.out
        if not (out.exists() or out.is_symlink()):
            return
        if not out.is_dir():
            raise PrepError(f"{out}: exists and is not a folder")
        if not any(out.iterdir()):
            return
        if not (out / MANIFEST_NAME).is_file():
            raise PrepError(f"{out}: exists, is not empty and has no {MANIFEST_NAME} (not made by these scripts, "
                            f"or by an older version): remove it or choose another --out; it is never "
                            f"overwritten")
        try:
            made_by = read_manifest(out).get("script")
        except PrepError:
            made_by = None  # an unreadable manifest of ours: replacing it is the fix
        if made_by not in (None, self.script):
            raise PrepError(f"{out}: holds a dataset prepared by {made_by}, not {self.script}: choose another --out")

    def _remove_leftovers(self) -> None:
        for p in staging_leftovers(self.out):
            pid = int(p.name[len(self.out.name):].split("-")[1])
            if p.is_dir() and not p.is_symlink() and not _pid_alive(pid):
                print(f"removing {p} (left over by an interrupted run)")
                shutil.rmtree(p)

    def scratch(self) -> Path:
        """A temporary folder for extraction, on the same file system as
        ``<out>`` (so ``--link hardlink`` works); removed at the end."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{self.out.name}.extract-{os.getpid()}-",
                                                  dir=self.out.parent))
        return self._scratch

    # -- writing
    def claim(self, rel: str, origin: str | os.PathLike) -> Path:
        """The path of output file ``rel`` in the new folder; an error naming
        both sources when another file already claimed it."""
        rel = Path(rel).as_posix()
        if rel in self._origin:
            raise PrepError(f"{self._origin[rel]} and {origin} would both become {rel}: duplicate name or number "
                            f"in the input; remove one of them")
        self._origin[rel] = str(origin)
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def place(self, src: Path, rel: str, mode: str = "copy") -> Path:
        """Copy / hard-link / symlink ``src`` to ``rel`` in the new folder."""
        dst = self.claim(rel, src)
        place(src, dst, mode)
        return dst

    def carry_over(self, keep: Callable[[str], bool]) -> dict | None:
        """Bring the files of the current ``<out>`` for which ``keep(rel)`` is
        true into the new folder (hard links, else copies; symlinks as
        symlinks): the parts this run does not rebuild. Only from a complete
        ``<out>`` of the same script whose files match its manifest; returns
        that manifest, or None when there is nothing to carry."""
        if not (self.out / MANIFEST_NAME).is_file():
            return None
        try:
            old = verify_prepared(self.out, self.script)
        except PrepError as e:
            print(f"warning: keeping nothing from the previous {self.out.name}: {e}")
            return None
        for rel in list_files(self.out):
            if keep(rel):
                src = self.out / rel
                dst = self.claim(rel, src)
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                else:
                    try:
                        os.link(src, dst)
                    except OSError:
                        shutil.copy2(src, dst)
        return old

    # -- finishing
    def commit(self, *, source: dict, params: dict, summary: dict) -> dict:
        """Write the manifest (last), check it, and swap the new folder in."""
        manifest = write_manifest(self.dir, script=self.script, version=self.version, source=source,
                                  params=params, summary=summary)
        verify_prepared(self.dir, self.script)
        self._check_replaceable()  # again: something may have appeared in <out> meanwhile
        out = self.out
        if out.exists() or out.is_symlink():
            backup = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-{os.getpid()}-", dir=out.parent))
            os.rename(out, backup / out.name)
            try:
                os.rename(self.dir, out)
            except BaseException:
                os.rename(backup / out.name, out)
                raise
            self._committed = True
            try:
                shutil.rmtree(backup)
            except OSError as e:
                raise PrepError(f"{out} was replaced, but the previous copy in {backup} could not be "
                                f"removed ({e}); delete it by hand") from None
        else:
            os.rename(self.dir, out)
            self._committed = True
        return manifest


# ------------------------------------------------------------------ images
_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def image_size(path: Path, verify: bool = False) -> tuple[int, int]:
    """(width, height) from the header (``verify``: also check the data);
    PrepError naming the file for an unreadable image or a decompression
    bomb (a header claiming more pixels than Pillow's limit)."""
    try:
        if verify:
            with Image.open(path) as im:
                im.verify()
        with Image.open(path) as im:
            return im.size
    except Image.DecompressionBombError as e:
        raise PrepError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except _IMAGE_ERRORS as e:
        raise PrepError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def place(src: Path, dst: Path, mode: str = "copy") -> None:
    """Copy (atomically), hard-link or symlink ``src`` to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if mode == "copy":
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    elif mode == "hardlink":
        os.link(src, dst)
    elif mode == "symlink":
        dst.symlink_to(src.resolve())
    else:
        raise ValueError(f"place: mode must be copy, hardlink or symlink; got {mode!r}")


def add_link_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--link", choices=("copy", "hardlink", "symlink"), default="copy",
                    help="how files reach the output folder (default copy; symlink only with --src)")


def add_output_args(ap: argparse.ArgumentParser, name: str, counts: str, link: bool = True) -> None:
    """--out (default ``<data>/<name>``), --allow-partial and, with ``link``, --link."""
    ap.add_argument("--out", type=Path, default=None, help=f"output folder (default <data>/{name})")
    ap.add_argument("--allow-partial", action="store_true", help=f"accept counts other than the official {counts}")
    if link:
        add_link_arg(ap)


def check_link(args: argparse.Namespace) -> None:
    if args.link == "symlink" and args.src is None:
        raise PrepError("--link symlink needs --src (links into a temporary extraction would dangle)")


# ------------------------------------------------------------------ paired folders
def find_dir(root: Path, *names: str, required: bool = True) -> Path | None:
    """The one folder at or below ``root`` named one of ``names`` (any case;
    ``__MACOSX`` is skipped). Two such folders are an error naming both;
    none is an error naming ``root`` unless ``required`` is false (None)."""
    wanted = {n.lower() for n in names}
    hits = [root] if root.name.lower() in wanted else []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__MACOSX")
        hits += [Path(dirpath) / d for d in dirnames if d.lower() in wanted]
    if len(hits) > 1:
        raise PrepError(f"{hits[0]} and {hits[1]}: two {' / '.join(names)} folders in the input; keep one")
    if not hits and required:
        raise PrepError(f"{root}: no folder named {' or '.join(names)} found")
    return hits[0] if hits else None


def pair_folder(deg_dir: Path, clean_dir: Path, problems: list[str], *,
                extra_clean_ok: bool = False) -> list[tuple[Path, Path]]:
    """[(degraded, clean)] matched by identical file name, checked by header:
    a missing folder, a file without a partner and a pair of different sizes
    are problems naming the file (clean files without a degraded partner are
    fine with ``extra_clean_ok``)."""
    for d in (deg_dir, clean_dir):
        if not d.is_dir():
            problems.append(f"{d}: folder not found")
            return []
    clean = {p.name: p for p in list_images(clean_dir)}
    degraded = list_images(deg_dir)
    pairs = []
    for d in degraded:
        c = clean.get(d.name)
        if c is None:
            problems.append(f"{d}: no partner {clean_dir / d.name}")
            continue
        try:
            sd, sc = image_size(d), image_size(c)
        except PrepError as e:
            problems.append(str(e))
            continue
        if sd != sc:
            problems.append(f"{d}: size {sd[0]}x{sd[1]} differs from its partner {c} ({sc[0]}x{sc[1]})")
        pairs.append((d, c))
    if not extra_clean_ok:
        problems += [f"{clean[n]}: no partner in {deg_dir}" for n in sorted(set(clean) - {d.name for d in degraded})]
    return pairs


def unique_stems(files: list[Path]) -> None:
    """Two files with the same name but for the extension (``baby.png`` and
    ``baby.bmp``) are the same image twice: an error naming both."""
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise PrepError(f"{seen[f.stem]} and {f}: both are image {f.stem!r}; remove one")
        seen[f.stem] = f


def place_pairs(st: Stage, split: str, pairs: list[tuple[Path, Path]], mode: str = "copy") -> None:
    """``<split>/{degraded,clean}/<name>``, the same name on both sides (the
    extension lower-cased)."""
    unique_stems([d for d, _ in pairs])
    for d, c in pairs:
        name = d.stem + d.suffix.lower()
        st.place(d, f"{split}/degraded/{name}", mode)
        st.place(c, f"{split}/clean/{name}", mode)


def check_count(what: str, found: int, expected: int | None, allow_partial: bool, problems: list[str]) -> None:
    """Record a problem when ``found`` differs from the published count."""
    if expected is not None and found != expected:
        msg = f"{what}: found {found}, the official release has {expected}"
        if allow_partial:
            print(f"warning: {msg} (--allow-partial)")
        else:
            problems.append(msg + " (pass --allow-partial to accept a subset)")


def fail_if(problems: list[str], where: Path | str) -> None:
    if problems:
        shown = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise PrepError(f"{where}: {len(problems)} problem(s):\n  {shown}{more}")


def run_main(main) -> None:
    """Entry point: PrepError, verification and archive failures become an
    ``error: ...`` message (one line, except PrepError's list of problems)
    and exit status 1, without a traceback (other errors keep theirs)."""
    try:
        sys.exit(main())
    except (PrepError, _download.VerificationError, _download.HashRequired, _download.UnsafeArchiveError,
            FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def lr_partner(hr: Path, lr_dir: Path, scale: int, problems: list[str]) -> Path | None:
    """The official bicubic LR of ``hr`` (``<lr_dir>/<stem>x<scale>.png``, DIV2K's and Flickr2K's naming),
    checked by name and by size (HR / scale, rounded down or up); None with a line in ``problems`` if not."""
    lr = lr_dir / f"{hr.stem}x{scale}.png"
    if not lr.is_file():
        problems.append(f"{hr}: LR partner {lr} missing")
        return None
    try:
        (w, h), (lw, lh) = image_size(hr), image_size(lr)
    except PrepError as e:
        problems.append(str(e))
        return None
    if (lw, lh) not in ((w // scale, h // scale), (math.ceil(w / scale), math.ceil(h / scale))):
        problems.append(f"{lr}: size {lw}x{lh} is not {w}x{h} / {scale}")
    return lr

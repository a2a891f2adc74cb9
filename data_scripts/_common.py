"""Helpers shared by the dataset preparation scripts (not run in CI).

Every script gets its input in one of three ways, all verified:

* ``--src DIR``: an already extracted copy (nothing to verify: your files);
* ``--archive FILE``: an archive you downloaded yourself; its SHA-256 is
  checked against ``--sha256``/``--sha256-file``, or printed and refused
  unless ``--accept-hash`` is given;
* ``--url URL`` (or the script's default URL): downloaded into ``--cache``
  and verified the same way (see ``_download.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import _download

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class PrepError(RuntimeError):
    """A dataset folder that does not have the expected layout or content."""


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


def add_source_args(ap: argparse.ArgumentParser, *, archive_help: str, default_url: str | None = None) -> None:
    g = ap.add_argument_group("input (one of)")
    g.add_argument("--src", type=Path, help="an already extracted copy of the dataset")
    g.add_argument("--archive", type=Path, help=archive_help)
    g.add_argument("--url", default=default_url,
                   help="download from this URL" + (f" (default {default_url})" if default_url else ""))
    h = ap.add_argument_group("integrity (for --archive and --url)")
    h.add_argument("--sha256", help="expected SHA-256 of the archive")
    h.add_argument("--sha256-file", type=Path, help="sha256sum-style file with the expected hash(es)")
    h.add_argument("--accept-hash", action="store_true",
                   help="no expected hash known: print the computed one, record it and go on")
    ap.add_argument("--cache", type=Path, default=None, help="download folder (default <data>/downloads)")


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


def obtain_archive(args: argparse.Namespace, filename: str, url: str | None, official: str) -> Path:
    """The verified archive ``filename`` from --archive or a download."""
    if args.archive is not None:
        _download.verify_file(args.archive, expected_hash(args, args.archive.name), args.accept_hash)
        return args.archive
    if url:
        cache = args.cache or default_data_dir() / "downloads"
        return _download.download(url, cache / filename, expected_hash(args, filename),
                                  accept_hash=args.accept_hash)
    raise PrepError(f"no input given: download the data from {official} and pass --archive FILE "
                    f"(or --src DIR for an extracted copy, or --url URL)")


def resolve_input(args: argparse.Namespace, filename: str, url: str | None, official: str,
                  workdir: Path) -> Path:
    """A folder holding the dataset: --src as is, else the verified archive
    extracted (safely) into ``workdir``."""
    if args.src is not None:
        if not args.src.is_dir():
            raise PrepError(f"{args.src}: --src is not a folder")
        return args.src
    archive = obtain_archive(args, filename, url, official)
    return _download.safe_extract(archive, workdir)


@contextlib.contextmanager
def temp_workdir(out: Path):
    """A temporary folder inside ``out`` (same file system, so hard links
    work); removed afterwards, as is ``out`` itself if this created it and
    it stayed empty."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".extract-", dir=out) as work:
            yield work
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


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
    """Entry point: PrepError and verification failures become a one-line
    message and exit status 1 (other errors keep their traceback)."""
    try:
        sys.exit(main())
    except (PrepError, _download.VerificationError, _download.HashRequired, _download.UnsafeArchiveError,
            FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)

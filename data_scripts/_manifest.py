"""Completion manifests of prepared dataset folders (standard library only).

Every preparation script that writes an output folder builds it in a
temporary sibling and writes ``<folder>/MANIFEST.json`` **last**, just before
the folder takes its final name (see ``_common.Stage``). The manifest holds
the script and its version, the source (archive name and SHA-256, or the
``--src`` path), the parameters (split seed and ratio, ...), a summary of the
counts, the number of files in every sub-folder, the SHA-256 of the sorted
file list, and ``"complete": true``.

:func:`verify_prepared` is what a loader calls before it trusts a prepared
folder: it refuses, in one line naming the folder, a folder without a
complete manifest or whose files differ from it (a half-copied, interrupted,
edited or mixed folder). This module imports nothing from the scripts, so it
can be loaded on its own (``importlib``) or moved into the library.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

__all__ = ["MANIFEST_NAME", "SCHEMA", "PrepError", "list_files", "file_list_sha256", "count_by_folder",
           "write_manifest", "read_manifest", "verify_prepared"]

MANIFEST_NAME = "MANIFEST.json"
SCHEMA = 1


class PrepError(RuntimeError):
    """A dataset folder that does not have the expected layout or content."""


def list_files(folder: str | os.PathLike) -> list[str]:
    """Every file (and symlink) below ``folder`` except the manifest, as
    sorted ``/``-separated relative paths. Symlinked folders are listed as
    entries, not followed."""
    folder = Path(folder)
    out: list[str] = []
    stack = [("", folder)]
    while stack:
        prefix, d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                rel = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", Path(e.path)))
                elif rel != MANIFEST_NAME:
                    out.append(rel)
    return sorted(out)


def file_list_sha256(files: list[str]) -> str:
    """SHA-256 of the sorted relative paths, one per line."""
    return hashlib.sha256("".join(f + "\n" for f in sorted(files)).encode()).hexdigest()


def count_by_folder(files: list[str]) -> dict[str, int]:
    """{relative folder ('' for the top): number of files directly in it}."""
    counts: dict[str, int] = {}
    for f in files:
        d = f.rsplit("/", 1)[0] if "/" in f else ""
        counts[d] = counts.get(d, 0) + 1
    return dict(sorted(counts.items()))


def write_manifest(folder: str | os.PathLike, *, script: str, version: str, source: dict, params: dict,
                   summary: dict) -> dict:
    """Write ``<folder>/MANIFEST.json`` describing the files now in ``folder``
    (call it after the last data file is written). Returns the manifest."""
    folder = Path(folder)
    files = list_files(folder)
    manifest = {
        "schema": SCHEMA,
        "script": script,
        "script_version": version,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "params": params,
        "summary": summary,
        "n_files": len(files),
        "counts": count_by_folder(files),
        "files_sha256": file_list_sha256(files),
        "complete": True,
    }
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST_NAME)
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of ``folder`` (no check of the files); PrepError if it
    is missing, unreadable or not marked complete."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise PrepError(f"{folder}: prepared dataset folder not found")
    if not path.is_file():
        raise PrepError(f"{folder}: no {MANIFEST_NAME}: not a complete prepared dataset (an interrupted run, "
                        f"or made by an older script); run its data_scripts/prepare_*.py again")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PrepError(f"{folder}: unreadable {MANIFEST_NAME} ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        raise PrepError(f"{folder}: {MANIFEST_NAME} is not marked complete; run the preparation script again")
    if manifest.get("schema") != SCHEMA:
        raise PrepError(f"{folder}: {MANIFEST_NAME} has schema {manifest.get('schema')!r}, this code reads "
                        f"schema {SCHEMA}")
    return manifest


def verify_prepared(folder: str | os.PathLike, script: str | None = None) -> dict:
    """Check that ``folder`` holds exactly the files its complete manifest
    lists (counts per folder, hash of the file list, no broken symlink), and
    that ``script`` (e.g. ``"prepare_gopro"``) made it when given. Returns
    the manifest; raises :class:`PrepError` with one line naming the folder.
    File contents are not hashed (that would read the whole dataset)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if script is not None and manifest.get("script") != script:
        raise PrepError(f"{folder}: prepared by {manifest.get('script')!r}, not by {script!r}")
    files = list_files(folder)
    if len(files) != manifest.get("n_files") or file_list_sha256(files) != manifest.get("files_sha256"):
        found, listed = count_by_folder(files), manifest.get("counts", {})
        diff = [f"{d or '.'}/: {listed.get(d, 0)} in the manifest, {found.get(d, 0)} found"
                for d in sorted(set(found) | set(listed)) if found.get(d, 0) != listed.get(d, 0)]
        detail = "; ".join(diff[:5]) + (f"; ... ({len(diff)} folders differ)" if len(diff) > 5 else "")
        raise PrepError(f"{folder}: files differ from {MANIFEST_NAME} ({len(files)} files found, "
                        f"{manifest.get('n_files')} listed" + (f"; {detail}" if detail else "; same counts, "
                        "other names") + "); prepare it again")
    broken = [f for f in files if (folder / f).is_symlink() and not (folder / f).exists()]
    if broken:
        raise PrepError(f"{folder}: {len(broken)} broken symlink(s), e.g. {broken[0]} (was the --src folder "
                        f"moved?); prepare it again")
    return manifest

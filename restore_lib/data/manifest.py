"""Completion manifests of prepared dataset folders (standard library only).

Every preparation script (``data_scripts/prepare_*.py``) that writes an
output folder builds it in a temporary sibling (``<folder>.partial-<pid>-XXXX``)
and writes ``<folder>/MANIFEST.json`` **last**, just before the folder takes
its final name (``data_scripts/_common.Stage``). The manifest holds the script
and its version, the source (archive name and SHA-256, or the ``--src``
path), the parameters (split seed and ratio, ...), a summary of the counts,
the number of files in every sub-folder, the SHA-256 of the sorted file list,
and ``"complete": true``.

:func:`verify_prepared` checks a folder against its manifest: it refuses, in
one line naming the folder, a folder without a complete manifest or whose
files differ from it (a half-copied, interrupted, edited or mixed folder).

:func:`check_data_folder` is the gate of the library's loaders that read a
user's data folder (``load_pairs``, ``load_all_in_one``, ``GoProDataset``,
``PairedFolderDataset``), with the contract of ``data_scripts/README.md``:

* a folder with a ``MANIFEST.json`` must verify (else :class:`PrepError`:
  one line with the folder, the problem and the command that prepares it);
* a folder without one, next to the staging folder of a preparation that did
  not finish (``<folder>.partial-*``, ``.extract-*``, ``.old-*``), is refused
  the same way, and so is a missing folder with such leftovers;
* a folder without a manifest and without leftovers is a user's own raw
  folder: it is read as it is, after an :class:`UnverifiedFolderWarning` that
  names it, once per folder and process (nothing about it is checked but
  what the loader itself checks).

The data_scripts import this module under their old name ``_manifest``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path

__all__ = ["MANIFEST_NAME", "SCHEMA", "PrepError", "UnverifiedFolderWarning", "list_files", "file_list_sha256",
           "count_by_folder", "write_manifest", "read_manifest", "verify_prepared", "staging_leftovers",
           "prepare_command", "check_data_folder"]

MANIFEST_NAME = "MANIFEST.json"
SCHEMA = 1


class PrepError(RuntimeError):
    """A dataset folder that does not have the expected layout or content."""


class UnverifiedFolderWarning(UserWarning):
    """A data folder without a MANIFEST.json (not made by data_scripts) is read unverified."""


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


# ------------------------------------------------------------------ the loaders' gate
#: what a loader tells its user to run, per preparation script ({out}: the folder, {parent}/{name}: its parts)
PREPARE_COMMANDS = {
    "prepare_gopro": "python data_scripts/prepare_gopro.py --archive GOPRO_Large.zip --sha256 <hash> --out {out}",
    "prepare_hw4": "python data_scripts/prepare_hw4.py --src <hw4_realse_dataset> --out {out}",
    "prepare_rain100l": "python data_scripts/prepare_rain100l.py --split {name} --archive <archive> --accept-hash "
                        "--out {parent}",
    "prepare_div2k": "python data_scripts/prepare_div2k.py --archives-dir <folder> --sha256-file <file> --out {out}",
    "prepare_sr_benchmarks": "python data_scripts/prepare_sr_benchmarks.py --name <Set5|Set14|Urban100> "
                             "--archive <zip> --sha256 <hash> --out {out}",
    "prepare_lol": "python data_scripts/prepare_lol.py --archive LOLdataset.zip --accept-hash --out {out}",
    "prepare_sidd": "python data_scripts/prepare_sidd.py --noisy-mat ValidationNoisyBlocksSrgb.mat "
                    "--gt-mat ValidationGtBlocksSrgb.mat --accept-hash --out {out}",
    "prepare_rain13k": "python data_scripts/prepare_rain13k.py --archive train.zip test.zip --accept-hash --out {out}",
    "prepare_hide": "python data_scripts/prepare_hide.py --archive HIDE_dataset.zip --accept-hash --out {out}",
    "prepare_denoise": "python data_scripts/prepare_denoise.py --name {name} --src <folder> --out {out}",
    "prepare_flickr2k": "python data_scripts/prepare_flickr2k.py --archive Flickr2K.tar --accept-hash --out {out}",
    "make_report_data": "python data_scripts/make_report_data.py --report <restoravision|diffir|ptgrm> "
                        "--out {parent} --tasks {name} [--gopro DIR --div2k DIR ...: the prepared sources]",
}


def prepare_command(script: str | None, folder: str | os.PathLike) -> str:
    """The command line that (re)builds ``folder`` with ``script`` (a name of
    ``PREPARE_COMMANDS``; None or another name: the generic form)."""
    folder = Path(folder)
    template = PREPARE_COMMANDS.get(script or "")
    if template is None:
        return f"python data_scripts/{script or 'prepare_<dataset>'}.py ... --out {folder} (see data_scripts/README.md)"
    return template.format(out=folder, parent=folder.parent, name=folder.name)


def staging_leftovers(folder: str | os.PathLike) -> list[Path]:
    """The temporary siblings a preparation of ``folder`` makes
    (``<name>.partial-<pid>-*``, ``.extract-*``, ``.old-*``) that exist now:
    a run that was interrupted, or one still under way."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return []
    pattern = re.compile(re.escape(folder.name) + r"\.(partial|extract|old)-\d+-[^/]+$")
    return sorted(p for p in folder.parent.iterdir() if pattern.match(p.name))


#: raw folders already warned about in this process (one warning per folder, however many loaders read it)
_WARNED: set[Path] = set()


def _unit(folder: Path, levels: int) -> Path | None:
    """The prepared unit ``folder`` belongs to: itself or one of its ``levels``
    parents, the first that holds a manifest or has staging leftovers."""
    for candidate in [folder, *list(folder.parents)[:levels]]:
        if (candidate / MANIFEST_NAME).exists() or staging_leftovers(candidate):
            return candidate
    return None


def _script_near(unit: Path) -> str | None:
    """The script named by the manifests next to ``unit`` (its sibling splits),
    when they agree on one: what most likely prepares ``unit`` too."""
    if not unit.parent.is_dir():
        return None
    scripts = set()
    for sibling in unit.parent.iterdir():
        if sibling != unit and (sibling / MANIFEST_NAME).is_file():
            try:
                scripts.add(read_manifest(sibling).get("script"))
            except PrepError:
                continue      # a broken neighbour says nothing about this folder
    return scripts.pop() if len(scripts) == 1 else None


def check_data_folder(folder: str | os.PathLike, *, script: str | None = None, what: str = "data",
                      levels: int = 0) -> dict | None:
    """The gate of every loader that reads a user's data folder (see the
    module docstring). ``folder`` is what the loader reads; its prepared unit
    is ``folder`` or, when that holds no manifest, the first of its
    ``levels`` parents that does (Rain100L has one manifest per split, the
    other scripts one per dataset). ``script``: the script the loader's layout
    comes from (checked against the manifest, and named in the command);
    ``what`` names the layout in messages. Returns the verified manifest, or
    None for a raw folder (after the warning) and for a folder that does not
    exist (the loader says it is missing)."""
    folder = Path(folder)
    unit = _unit(folder, levels)
    if unit is None:
        if folder.is_dir() and folder not in _WARNED:
            _WARNED.add(folder)
            warnings.warn(f"{folder}: no {MANIFEST_NAME}, so this {what} folder was not made by data_scripts (or "
                          f"not finished by them); it is read as it is, unverified (counts, split and completeness "
                          f"are not checked). To use a verified copy: {prepare_command(script, folder)}",
                          UnverifiedFolderWarning, stacklevel=3)
        return None
    manifest_path = unit / MANIFEST_NAME
    if not manifest_path.exists():
        leftover = staging_leftovers(unit)[0]
        script = script or _script_near(unit)
        state = "has no" if unit.is_dir() else "does not exist and has no"
        raise PrepError(f"{unit}: the preparation of this {what} folder did not finish (it {state} {MANIFEST_NAME}, "
                        f"and {leftover.name} is left next to it by an interrupted or still running data_scripts "
                        f"run); prepare it with: {prepare_command(script, unit)}")
    try:
        return verify_prepared(unit, script)
    except PrepError as e:
        try:
            made_by = read_manifest(unit).get("script") if script is None else script
        except PrepError:
            made_by = script
        raise PrepError(f"{e} [{what} folder refused; prepare it with: {prepare_command(made_by, unit)}]") from None

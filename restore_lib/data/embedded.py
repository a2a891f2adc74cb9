"""The embedded dataset: paired data built offline from photos inside wheels.

No PyPI package ships a restoration benchmark, but a few wheels ship real,
freely licensed photographs. This module turns them into a small paired
dataset for every task in :data:`restore_lib.data.degradations.DEGRADATIONS`,
deterministically, in seconds, with no network.

Sources (all RGB; licences from the packages' own docstrings/READMEs):

==========================  =====================  ===========================
name                        package (loader)       licence
==========================  =====================  ===========================
astronaut                   scikit-image           public domain (NASA)
chelsea                     scikit-image           CC0
coffee                      scikit-image           CC0
rocket                      scikit-image           public domain (SpaceX)
hubble_deep_field           scikit-image           public domain (NASA)
retina                      scikit-image           CC0
immunohistochemistry        scikit-image           no known copyright restrictions
motorcycle_left/_right      scikit-image           Middlebury 2014 stereo (research)
grace_hopper                matplotlib sample_data public domain (US Navy)
barbara                     sporco (optional)      freely redistributable (Set14)
monarch                     sporco (optional)      Waterloo BragZone, free (Set14)
kodim23                     sporco (optional)      Kodak, unrestricted
sail, tulips                sporco (optional)      Waterloo BragZone, free
==========================  =====================  ===========================

Splits are by whole image, never by patch (the stereo pair stays together):

=====  =====================================  ==================================
split  with sporco installed                  fallback without sporco
=====  =====================================  ==================================
test   monarch, barbara, kodim23, coffee      coffee, astronaut
val    tulips, chelsea                        chelsea
train  astronaut, rocket, hubble_deep_field,  rocket, hubble_deep_field, retina,
       retina, immunohistochemistry,          immunohistochemistry,
       motorcycle_left, motorcycle_right,     motorcycle_left, motorcycle_right,
       grace_hopper, sail                     grace_hopper
=====  =====================================  ==================================

Each clean source is downscaled with the MATLAB-compatible bicubic so that
its longer side is at most 320 px (aspect kept), mod-cropped to a multiple of
16 and rounded to 8 bits. Degradations are applied to that 8-bit clean
image, so the pair on disk is exactly (clean, degrade(clean)).

Layout: ``<root>/<task>/<split>/{degraded,clean}/<file>.png``, the same file
name on both sides (for ``sr_x4`` the degraded image is the x4 LR image).
Train images get 3 seeded variants ``<name>_v0.png`` .. ``<name>_v2.png``
(1 for seed-independent tasks such as ``sr_x4``, where variants would be
identical copies); val and test get one, ``<name>.png``. The seed of each
(task, image, variant) is ``SeedSequence([seed, h(task), h(name), variant])``
with ``h`` the first 4 bytes of a SHA-256 (never Python's ``hash()``).

``<root>/manifest.json`` records the schema and builder version, the seed,
the sources (package, version, licence, shapes), the split table, the sha256
of every file, a hash per task and the dataset hash: SHA-256 over the lines
``"<relative path>\\t<file sha256>\\n"`` in sorted path order. The manifest
has no time stamps, so a rebuild gives the same bytes everywhere.

Default root: ``$RESTORE_DATA/embedded`` if ``RESTORE_DATA`` is set, else
``<repo root>/data/embedded`` (the repo root is the nearest folder above this
package holding ``pyproject.toml``; the current directory otherwise).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..utils import repo_root, sha256_file
from ..weights import package_file
from .degradations import DEGRADATIONS, DETERMINISTIC_TASKS, NOISE_CONVENTION, degrade
from .imresize import imresize, modcrop
from .io import read_image, write_image

__all__ = ["TASKS", "SPLITS", "SOURCES", "SCHEMA_VERSION", "BUILDER_VERSION", "MAX_SIDE", "MOD",
           "TRAIN_VARIANTS", "default_root", "available_sources", "split_table", "load_source", "build",
           "ensure", "load_split", "dataset_hash", "read_manifest", "EmbeddedDatasetError"]

TASKS = tuple(DEGRADATIONS)
SPLITS = ("train", "val", "test")
SCHEMA_VERSION = 1
#: bump when the builder's output changes for the same seed
BUILDER_VERSION = 1
MAX_SIDE = 320
MOD = 16
TRAIN_VARIANTS = 3

_SK = "scikit-image"
#: name -> (distribution, how it is loaded, licence)
SOURCES: dict[str, tuple[str, str, str]] = {
    "astronaut": (_SK, "skimage.data.astronaut()", "public domain (NASA)"),
    "chelsea": (_SK, "skimage.data.chelsea()", "CC0"),
    "coffee": (_SK, "skimage.data.coffee()", "CC0"),
    "rocket": (_SK, "skimage.data.rocket()", "public domain (SpaceX)"),
    "hubble_deep_field": (_SK, "skimage.data.hubble_deep_field()", "public domain (NASA)"),
    "retina": (_SK, "skimage.data.retina()", "CC0"),
    "immunohistochemistry": (_SK, "skimage.data.immunohistochemistry()", "no known copyright restrictions"),
    "motorcycle_left": (_SK, "skimage.data.stereo_motorcycle()[0]",
                        "Middlebury 2014 stereo dataset (research use), downsampled"),
    "motorcycle_right": (_SK, "skimage.data.stereo_motorcycle()[1]",
                         "Middlebury 2014 stereo dataset (research use), downsampled"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "public domain (US Navy photo)"),
    "barbara": ("sporco", "sporco/data/barbara.png", "freely redistributable (sporco data README; Set14 barbara)"),
    "monarch": ("sporco", "sporco/data/monarch.png", "Waterloo BragZone, free of copyright (Set14 monarch)"),
    "kodim23": ("sporco", "sporco/data/kodim23.png", "Kodak, released for unrestricted use"),
    "sail": ("sporco", "sporco/data/sail.png", "Waterloo BragZone, free of copyright"),
    "tulips": ("sporco", "sporco/data/tulips.png", "Waterloo BragZone, free of copyright"),
}

_SPLITS_SPORCO = {
    "test": ("monarch", "barbara", "kodim23", "coffee"),
    "val": ("tulips", "chelsea"),
    "train": ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
              "motorcycle_left", "motorcycle_right", "grace_hopper", "sail"),
}
_SPLITS_FALLBACK = {
    "test": ("coffee", "astronaut"),
    "val": ("chelsea",),
    "train": ("rocket", "hubble_deep_field", "retina", "immunohistochemistry",
              "motorcycle_left", "motorcycle_right", "grace_hopper"),
}


class EmbeddedDatasetError(RuntimeError):
    """The embedded dataset is missing, inconsistent, or cannot be built."""


# ------------------------------------------------------------------ locations
def default_root() -> Path:
    """``$RESTORE_DATA/embedded``, else ``<repo root>/data/embedded``."""
    env = os.environ.get("RESTORE_DATA")
    return (Path(env) if env else repo_root() / "data") / "embedded"


def _root(root) -> Path:
    return Path(root) if root is not None else default_root()


# -------------------------------------------------------------------- sources
def _sporco_dir() -> Path | None:
    return package_file("sporco", "data")


def available_sources() -> list[str]:
    """Names of the sources present in this environment (sporco is optional)."""
    return [n for n in SOURCES if SOURCES[n][0] != "sporco"
            or (_sporco_dir() is not None and (_sporco_dir() / f"{n}.png").is_file())]


def split_table(sources: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Split -> image names: the sporco table when all five sporco images are
    present, else the documented fallback."""
    have = set(available_sources() if sources is None else sources)
    table = _SPLITS_SPORCO if all(n in have for names in _SPLITS_SPORCO.values() for n in names) \
        else _SPLITS_FALLBACK
    missing = [n for names in table.values() for n in names if n not in have]
    if missing:
        raise EmbeddedDatasetError(f"embedded dataset: source images not available: {', '.join(missing)}")
    return dict(table)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_source(name: str) -> np.ndarray:
    """The original photo ``name`` as float32 RGB (H, W, 3) in [0, 1]."""
    if name not in SOURCES:
        raise EmbeddedDatasetError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    dist = SOURCES[name][0]
    if dist == _SK:
        import skimage.data
        if name.startswith("motorcycle_"):
            arr = skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
        else:
            arr = getattr(skimage.data, name)()
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise EmbeddedDatasetError(f"skimage.data.{name}: expected uint8 RGB, got {arr.dtype} {arr.shape}")
        return arr.astype(np.float32) / 255.0
    if dist == "matplotlib":
        path = package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    else:
        folder = _sporco_dir()
        path = None if folder is None else folder / f"{name}.png"
    if path is None or not path.is_file():
        raise EmbeddedDatasetError(f"source {name!r}: file {SOURCES[name][1]} not found in the installed {dist}")
    return read_image(path)


def preprocess(img: np.ndarray) -> np.ndarray:
    """Longer side <= MAX_SIDE by MATLAB bicubic (aspect kept), mod-crop to
    MOD, rounded to 8-bit levels; float32 in [0, 1]."""
    h, w = img.shape[:2]
    if max(h, w) > MAX_SIDE:
        f = MAX_SIDE / max(h, w)
        shape = (MAX_SIDE, max(1, round(w * f))) if h >= w else (max(1, round(h * f)), MAX_SIDE)
        img = imresize(img, output_shape=shape)
    img = modcrop(np.clip(img, 0.0, 1.0), MOD)
    return (np.round(img * 255.0) / 255.0).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _prepared(name: str) -> tuple[tuple[int, ...], np.ndarray]:
    """(original shape, ``preprocess(load_source(name))``), cached per
    process; the array is read-only."""
    original = load_source(name)
    img = preprocess(original)
    img.setflags(write=False)
    return tuple(original.shape), img


# ------------------------------------------------------------------- hashing
def _combine(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\t{files[rel]}\n".encode())
    return h.hexdigest()


def _name_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def item_seed(seed: int, task: str, name: str, variant: int) -> np.random.SeedSequence:
    """The seed of one degraded file, independent of build order."""
    return np.random.SeedSequence([int(seed), _name_int(task), _name_int(name), int(variant)])


def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for mod in ("imresize.py", "degradations.py", "embedded.py"):
        h.update((here / mod).read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------- manifest
def read_manifest(root=None) -> dict:
    """The parsed ``manifest.json``; an error naming the path if missing or bad."""
    path = _root(root) / "manifest.json"
    if not path.is_file():
        raise EmbeddedDatasetError(f"{path}: no embedded dataset here; build it with "
                                   f"`python data_scripts/make_embedded.py` or restore_lib.data.embedded.ensure()")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EmbeddedDatasetError(f"{path}: corrupt manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise EmbeddedDatasetError(f"{path}: unsupported manifest schema "
                                   f"{manifest.get('schema_version') if isinstance(manifest, dict) else '?'}")
    return manifest


def _up_to_date(root: Path, seed: int, tasks: list[str]) -> bool:
    if not (root / "manifest.json").is_file():
        return False
    try:
        m = read_manifest(root)
        table = split_table()
    except EmbeddedDatasetError:
        return False
    return (m.get("builder_version") == BUILDER_VERSION and m.get("code_sha256") == _code_digest()
            and m.get("seed") == seed and m.get("tasks") == tasks
            and m.get("splits") == {s: list(table[s]) for s in SPLITS}
            and all((root / rel).is_file() for rel in m.get("files", {})))


# -------------------------------------------------------------------- build
def _write_task(root: Path, task: str, splits: dict, clean: dict, seed: int, clean_png: Path) -> None:
    """Write every (degraded, clean) pair of one task; the clean PNGs are
    copies of the files encoded once in ``clean_png``."""
    n_train = 1 if task in DETERMINISTIC_TASKS else TRAIN_VARIANTS
    for split, names in splits.items():
        for name in names:
            for v in range(n_train if split == "train" else 1):
                fname = f"{name}_v{v}.png" if split == "train" else f"{name}.png"
                base = root / task / split
                y = degrade(task, clean[name], item_seed(seed, task, name, v))
                write_image(base / "degraded" / fname, y)
                (base / "clean").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(clean_png / f"{name}.png", base / "clean" / fname)


def build(root=None, seed: int = 0, tasks: Iterable[str] | None = None, force: bool = False,
          workers: int | None = None) -> Path:
    """Build the embedded dataset at ``root`` and return ``root``.

    Idempotent: when ``root/manifest.json`` records the same seed, tasks,
    sources, builder version and code, and every file exists, nothing is
    done (unless ``force``). Otherwise the dataset is written into a staging
    folder next to ``root`` and swapped in, so ``root`` never holds a
    half-built dataset. A non-empty ``root`` without our manifest is never
    deleted: that is an error. ``workers`` processes share the tasks
    (default: up to 2); the bytes do not depend on it.
    """
    root = _root(root).resolve()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"build: seed must be a non-negative int; got {seed!r}")
    seed = int(seed)
    requested = list(TASKS) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = sorted(set(requested) - set(TASKS))
    if unknown or not requested:
        raise ValueError(f"build: unknown tasks {unknown or 'none given'}; known tasks: {', '.join(TASKS)}")
    tasks = [t for t in TASKS if t in set(requested)]
    if not force and _up_to_date(root, seed, tasks):
        return root
    if root.exists() and any(root.iterdir()) and not (root / "manifest.json").is_file():
        raise EmbeddedDatasetError(f"{root}: exists, is not empty and holds no embedded-dataset manifest; "
                                   f"refusing to overwrite it (choose another root)")
    names = available_sources()
    splits = split_table(names)
    used = [n for s in SPLITS for n in splits[s]]
    originals = {n: _prepared(n)[0] for n in used}
    clean = {n: _prepared(n)[1] for n in used}

    root.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        cache = stage / ".clean"
        for name, img in clean.items():
            write_image(cache / f"{name}.png", img)
        _run_tasks(stage, tasks, splits, clean, seed, workers, cache)
        shutil.rmtree(cache)
        files = {p.relative_to(stage).as_posix(): sha256_file(p)
                 for p in sorted(stage.rglob("*.png"))}
        manifest = _manifest(seed, tasks, splits, used, originals, clean, files)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _swap_in(stage, root)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return root


def _run_tasks(stage: Path, tasks, splits, clean, seed, workers, cache: Path) -> None:
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            _write_task(stage, task, splits, clean, seed, cache)
        return
    import concurrent.futures as cf
    import multiprocessing as mp
    # fork (Linux): the children inherit the loaded images; spawn elsewhere
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
        futures = [pool.submit(_write_task, stage, t, splits, clean, seed, cache) for t in tasks]
        for f in futures:
            f.result()  # re-raises a worker's error


def _manifest(seed, tasks, splits, used, originals, clean, files) -> dict:
    split_of = {n: s for s in SPLITS for n in splits[s]}
    sources = [{"name": n, "package": SOURCES[n][0], "package_version": _version(SOURCES[n][0]),
                "origin": SOURCES[n][1], "licence": SOURCES[n][2], "split": split_of[n],
                "original_shape": list(originals[n]), "shape": list(clean[n].shape)}
               for n in available_sources() if n in split_of]
    task_hashes = {t: _combine({r: h for r, h in files.items() if r.startswith(f"{t}/")}) for t in tasks}
    return {
        "schema_version": SCHEMA_VERSION, "builder_version": BUILDER_VERSION, "code_sha256": _code_digest(),
        "seed": seed, "tasks": tasks, "splits": {s: list(splits[s]) for s in SPLITS},
        "sporco_used": any(SOURCES[n][0] == "sporco" for n in used),
        "preprocessing": f"MATLAB-bicubic to longer side <= {MAX_SIDE}, mod-crop {MOD}, 8-bit",
        "train_variants": TRAIN_VARIANTS, "deterministic_tasks": sorted(DETERMINISTIC_TASKS & set(tasks)),
        "noise_convention": NOISE_CONVENTION, "sources": sources, "files": files,
        "task_hashes": task_hashes, "dataset_hash": _combine(files),
        "hash_definition": "sha256 over '<relative path>\\t<file sha256>\\n' lines, sorted by path",
        "environment": {d: _version(d) for d in ("numpy", "scipy", "pillow", "scikit-image")},
    }


def _swap_in(stage: Path, root: Path) -> None:
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, old / "data")
    os.replace(stage, root)
    if old is not None:
        shutil.rmtree(old)


def ensure(root=None, tasks: Iterable[str] | None = None) -> Path:
    """Return the dataset root, building it first, with a one-line notice,
    when it is missing, out of date (builder or code changed) or lacks one
    of ``tasks`` (default: all). An existing dataset keeps its seed."""
    root = _root(root)
    needed = list(TASKS) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
    seed, have = 0, []
    if (root / "manifest.json").is_file():
        m = read_manifest(root)
        seed, have = m.get("seed", 0), m.get("tasks", [])
        current = m.get("builder_version") == BUILDER_VERSION and m.get("code_sha256") == _code_digest()
        missing = [t for t in needed if t not in have]
        if current and not missing:
            return root
        reason = f"it lacks {', '.join(missing)}" if current else "it is out of date"
    else:
        reason = "it is missing"
    want = sorted(set(have) | set(needed), key=list(TASKS).index)
    print(f"embedded dataset: building {root} because {reason} (seed {seed}, {len(want)} tasks; "
          f"takes seconds)", flush=True)
    return build(root, seed=seed, tasks=want)


# --------------------------------------------------------------------- read
def load_split(task: str, split: str, root=None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, degraded, clean), ...]`` sorted by name; float32 (H, W, 3)."""
    if task not in TASKS:
        raise ValueError(f"load_split: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"load_split: unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    root = _root(root)
    manifest = read_manifest(root)
    if task not in manifest.get("tasks", []):
        raise EmbeddedDatasetError(f"{root}: task {task!r} was not built (built: {', '.join(manifest['tasks'])})")
    deg_dir, clean_dir = root / task / split / "degraded", root / task / split / "clean"
    out = []
    for p in sorted(deg_dir.glob("*.png")):
        c = clean_dir / p.name
        if not c.is_file():
            raise EmbeddedDatasetError(f"{c}: clean image for {p} is missing")
        out.append((p.stem, read_image(p), read_image(c)))
    if not out:
        raise EmbeddedDatasetError(f"{deg_dir}: no images")
    return out


def dataset_hash(root=None, task: str | None = None) -> str:
    """Hash of the files on disk (recomputed, not read from the manifest):
    of the whole dataset, or of one task's files."""
    root = _root(root)
    manifest = read_manifest(root)
    tasks = manifest["tasks"] if task is None else [task]
    if task is not None and task not in manifest["tasks"]:
        raise EmbeddedDatasetError(f"{root}: task {task!r} was not built (built: {', '.join(manifest['tasks'])})")
    files = {p.relative_to(root).as_posix(): sha256_file(p)
             for t in tasks for p in sorted((root / t).rglob("*.png"))}
    return _combine(files)

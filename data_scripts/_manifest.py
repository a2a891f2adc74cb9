"""Completion manifests of prepared dataset folders: the scripts' name for
:mod:`restore_lib.data.manifest`, where the one implementation lives (the
library's loaders check prepared folders with it too).

The repository root of this checkout goes first on ``sys.path``, so a script
run from a plain checkout uses the library next to it, not another installed
copy.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from restore_lib.data.manifest import (MANIFEST_NAME, SCHEMA, PrepError, count_by_folder,  # noqa: E402
                                       file_list_sha256, list_files, read_manifest, verify_prepared,
                                       write_manifest)

__all__ = ["MANIFEST_NAME", "SCHEMA", "PrepError", "list_files", "file_list_sha256", "count_by_folder",
           "write_manifest", "read_manifest", "verify_prepared"]

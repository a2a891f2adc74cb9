"""Keep committed notebooks clean: kernel ``python3``, no papermill or timing
metadata, sequential execution counts, no memory addresses or absolute paths,
no error outputs.

``python -m restore_lib.course.nbclean notebooks/*.ipynb`` rewrites them in place;
``--check`` only reports (exit 1 if something would change).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

from ..utils import atomic_write_text, repo_root

__all__ = ["clean_notebook", "notebook_problems", "main"]

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_DROP_CELL_META = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled", "jupyter")
_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def _scrub_text(text: str, roots: list[str]) -> str:
    text = _ADDR.sub(" at 0x…", text)
    for r in roots:
        text = text.replace(r, ".")
    return text


def clean_notebook(nb: dict) -> dict:
    """Return a cleaned copy of a notebook (nbformat 4 JSON as a dict)."""
    nb = copy.deepcopy(nb)
    roots = sorted({str(repo_root()), str(repo_root().resolve()), str(Path.home())}, key=len, reverse=True)
    meta = nb.setdefault("metadata", {})
    for k in ("papermill", "widgets", "toc", "varInspector"):
        meta.pop(k, None)
    meta["kernelspec"] = dict(KERNELSPEC)
    meta["language_info"] = {"name": "python"}
    # papermill's injected-parameters cell would override the parameters cell on every later run (a student's
    # edit of a parameter would silently do nothing): a committed notebook never keeps it
    nb["cells"] = [c for c in nb.get("cells", [])
                   if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    count = 0
    for cell in nb.get("cells", []):
        cmeta = cell.setdefault("metadata", {})
        for k in _DROP_CELL_META:
            cmeta.pop(k, None)
        if cell.get("cell_type") != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        executed = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        if executed:
            count += 1
        cell["execution_count"] = count if executed else None
        new_outputs = []
        for out in cell.get("outputs", []):
            out.pop("metadata", None) if out.get("output_type") == "stream" else None
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
            for key in ("text", ):
                if key in out:
                    out[key] = _scrub_lines(out[key], roots)
            for mime in list(data):
                if mime.startswith("text/"):
                    data[mime] = _scrub_lines(data[mime], roots)
            if out.get("output_type") in ("display_data", "execute_result") and not data:
                continue
            new_outputs.append(out)
        cell["outputs"] = new_outputs
    return nb


def _scrub_lines(value, roots):
    if isinstance(value, list):
        return [_scrub_text(v, roots) for v in value]
    return _scrub_text(value, roots)


def notebook_problems(nb: dict) -> list[str]:
    """What a committed notebook must not contain."""
    problems = []
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        problems.append("kernel is not python3")
    text = json.dumps(nb)
    if '"papermill"' in text:
        problems.append("papermill metadata")
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i} has an error output ({out.get('ename')})")
    if any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", [])):
        problems.append("papermill's injected-parameters cell (it would override the parameters cell)")
    params = [i for i, c in enumerate(nb.get("cells", [])) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        problems.append(f"expected exactly one 'parameters' cell, found {len(params)}")
    for root in {str(repo_root()), str(Path.home())}:
        if root in text:
            problems.append(f"absolute path {root} in outputs")
    return problems


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="report only; exit 1 if a notebook is not clean")
    args = ap.parse_args(argv)
    bad = 0
    for path in args.paths:
        raw = path.read_text(encoding="utf-8")
        nb = json.loads(raw)
        cleaned = _dump(clean_notebook(nb))
        problems = notebook_problems(json.loads(cleaned))
        if args.check:
            if cleaned != raw or problems:
                bad += 1
                why = "; ".join(problems) or "not in clean form (run python -m restore_lib.course.nbclean)"
                print(f"{path}: {why}")
        else:
            if cleaned != raw:
                atomic_write_text(path, cleaned)
                print(f"cleaned {path}")
            for p in problems:
                print(f"{path}: {p}")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

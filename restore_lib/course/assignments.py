"""Student versions of the notebooks, and the helper that hidden tests use.

    python -m restore_lib.course.assignments --out assignments [--notebooks notebooks/*.ipynb] [--verify]

Conventions (nbgrader's, so nbgrader can read the notebooks too; it need not
be installed):

* **Exercise cell**: a code cell tagged ``student-impl`` with the metadata
  ``{"nbgrader": {"grade_id": "<id>", "solution": true, "grade": false,
  "locked": false, "schema_version": 3}}``. Its solution sits between the
  lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (each alone on its
  line; several regions per cell are allowed). ``grade_id`` is unique within
  the notebook (letters, digits, ``_`` and ``-``).
* **Setup cell**: a code cell tagged ``assignment-setup`` (imports, helper
  functions, the parameters an exercise needs). A hidden test runs the setup
  cells that come before the exercise, then the exercise.
* ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` regions, in any code
  cell, are deleted from the student version.

The student version replaces each solution region by the two lines
``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the indentation of
its ``### BEGIN SOLUTION`` line, clears every output and execution count and
keeps the metadata (so the student's copy can be graded by ``grade_id``).
Anything that would leak a solution is an error: solution markers in a cell
that is not an exercise, or a tag without the metadata (and vice versa). A
student cell that is not valid Python after the replacement is an error too.
``manifest.json`` in the output folder lists the graded ids per notebook.

Hidden tests (pytest) call :func:`run_student_cells` on the notebook named by
:func:`student_notebook` and compare what it defined with ``restore_lib``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import itertools
import json
import linecache
import os
import re
import sys
import types
from pathlib import Path

from ..utils import atomic_write_text, read_json, repo_root
from .ablations import SpecError, list_specs, load_spec
from .nbclean import _dump, clean_notebook
from .runner import list_notebooks

__all__ = ["SOLUTION_TAG", "SETUP_TAG", "BEGIN_SOLUTION", "END_SOLUTION", "STUB", "AssignmentError",
           "StudentCodeError", "exercise_cells", "strip_solutions", "make_assignments", "run_student_cells",
           "student_notebook", "execute_until_exercise", "answer_cells", "main"]

SOLUTION_TAG = "student-impl"
SETUP_TAG = "assignment-setup"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
MANIFEST_VERSION = 1
STUDENT_DIR_ENV = "RESTORE_STUDENT_DIR"
#: student notebooks are handed out: readable by everybody whatever the umask of the instructor's shell
STUDENT_FILE_MODE = 0o644
_counter = itertools.count()


class AssignmentError(ValueError):
    """A notebook that breaks the exercise conventions; the message names notebook and cell."""


class StudentCodeError(RuntimeError):
    """A setup or exercise cell raised while a hidden test ran it."""


# ---------------------------------------------------------------------- reading cells
def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list:
    return cell.get("metadata", {}).get("tags", []) or []


def _is_solution(cell: dict) -> bool:
    nbg = cell.get("metadata", {}).get("nbgrader")
    return isinstance(nbg, dict) and nbg.get("solution") is True


def _is_answer(cell: dict) -> bool:
    nbg = cell.get("metadata", {}).get("nbgrader")
    return cell.get("cell_type") == "markdown" and _is_solution(cell) and nbg.get("grade") is True


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade_id": grade_id, "grade": grade, "solution": solution, "locked": locked, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return meta


def _has_marker(src: str, markers=(BEGIN_SOLUTION, END_SOLUTION)) -> bool:
    return any(m in src for m in markers)


def exercise_cells(nb: dict, source: str = "notebook") -> list[tuple[int, str]]:
    """``[(cell index, grade_id)]`` of the exercises, after checking the conventions
    (of a source notebook or a student copy: solution markers are not required)."""
    found, seen = [], {}
    for i, cell in enumerate(nb.get("cells", [])):
        where = f"{source}: cell {i}"
        src, sol, tagged = _source(cell), _is_solution(cell), SOLUTION_TAG in _tags(cell)
        if cell.get("cell_type") != "code":
            if _is_answer(cell) and not tagged and not _has_marker(src):
                continue                  # a written answer (markdown), graded by hand
            if sol or tagged or _has_marker(src):
                raise AssignmentError(f"{where} is a {cell.get('cell_type')} cell: exercises must be code cells")
            continue
        if tagged and not sol:
            raise AssignmentError(f"{where} is tagged {SOLUTION_TAG!r} but lacks metadata nbgrader.solution=true")
        if sol and not tagged:
            raise AssignmentError(f"{where} has nbgrader.solution=true but not the tag {SOLUTION_TAG!r}")
        if not sol:
            if _has_marker(src):
                raise AssignmentError(f"{where} contains {BEGIN_SOLUTION!r}/{END_SOLUTION!r} but is not an "
                                      f"exercise cell: its solution would reach the students")
            continue
        gid = cell["metadata"]["nbgrader"].get("grade_id")
        if not isinstance(gid, str) or not _GRADE_ID.match(gid):
            raise AssignmentError(f"{where}: nbgrader.grade_id must be letters, digits, '_' or '-', got {gid!r}")
        if gid in seen:
            raise AssignmentError(f"{where}: grade_id {gid!r} is already used by cell {seen[gid]}")
        seen[gid] = i
        found.append((i, gid))
    return found


# ---------------------------------------------------------------------- stripping
def _strip_source(src: str, where: str) -> str:
    """Replace solution regions by the stub and drop hidden-test regions."""
    out, state = [], None
    for n, line in enumerate(src.splitlines(keepends=True), 1):
        text = line.strip()
        marker = next((m for m in _MARKERS if m in line), None)
        if marker and text != marker:
            raise AssignmentError(f"{where}, line {n}: {marker!r} must be alone on its line")
        if text in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if state:
                raise AssignmentError(f"{where}, line {n}: {text!r} inside an open {state} region")
            state = "solution" if text == BEGIN_SOLUTION else "hidden-tests"
            if state == "solution":
                indent = line[: len(line) - len(line.lstrip())]
                out += [f"{indent}{s}\n" for s in STUB]
        elif text in (END_SOLUTION, END_HIDDEN):
            want = "solution" if text == END_SOLUTION else "hidden-tests"
            if state != want:
                raise AssignmentError(f"{where}, line {n}: {text!r} without a matching BEGIN line")
            state = None
        elif state is None:
            out.append(line)
    if state:
        raise AssignmentError(f"{where}: a {state} region is not closed")
    new = "".join(out)
    return new if src.endswith("\n") else new.rstrip("\n")


def _check_python(src: str, where: str) -> None:
    for n, line in enumerate(src.splitlines(), 1):
        if line.lstrip().startswith(("%", "!")):
            raise AssignmentError(f"{where}, line {n}: IPython syntax {line.strip()!r} in an exercise or setup "
                                  f"cell (hidden tests run these cells as plain Python)")
    try:
        ast.parse(src)
    except SyntaxError as e:
        raise AssignmentError(f"{where}: not valid Python after removing the solution (line {e.lineno}: {e.msg});"
                              f" put {BEGIN_SOLUTION!r} at the indentation of the code it encloses") from e


def _as_lines(src: str) -> list[str]:
    return src.splitlines(keepends=True)


def strip_solutions(nb: dict, source: str = "notebook") -> tuple[dict, list[str]]:
    """The student version of a notebook (a dict) and its graded ids, in order.

    Every exercise gets a locked, graded test cell (nbgrader ``grade: true, solution: false, locked: true``,
    ``grade_id`` ``<exercise>_test``, the exercise's ``points``, default 1): the first code cell with a
    hidden-tests region after it (before the next exercise), else a new cell placed right after the exercise
    that names the hidden tests which grade it."""
    exercises = dict(exercise_cells(nb, source))
    student = copy.deepcopy(nb)
    cells, owner = [], None          # owner: the exercise whose test cell is still to be found
    for i, cell in enumerate(student.get("cells", [])):
        if cell.get("cell_type") != "code":
            cells.append(cell)
            continue
        src = _source(cell)
        if i in exercises:
            if owner is not None:
                cells.append(_test_cell(owner, None, source))
            where = f"{source}: cell {i} (grade_id {exercises[i]!r})"
            if BEGIN_SOLUTION not in src:
                raise AssignmentError(f"{where} has no {BEGIN_SOLUTION!r} line")
            new = _strip_source(src, where)
            _check_python(new, where)
            cell["source"] = _as_lines(new)
            owner = cell
        elif _has_marker(src, (BEGIN_HIDDEN, END_HIDDEN)):
            cell["source"] = _as_lines(_strip_source(src, f"{source}: cell {i}"))
            if owner is not None:
                cell = _test_cell(owner, cell, source)
                owner = None
        cell["outputs"] = []
        cell["execution_count"] = None
        cells.append(cell)
    if owner is not None:
        cells.append(_test_cell(owner, None, source))
    student["cells"] = cells
    return clean_notebook(student), list(exercises.values())


def _test_cell(exercise: dict, cell: dict | None, source: str) -> dict:
    """The locked test cell of ``exercise``: ``cell`` (a cell with hidden tests) or a new one."""
    nbg = exercise["metadata"]["nbgrader"]
    gid = nbg["grade_id"]
    if cell is None:
        stem = Path(source).stem
        cell = {"cell_type": "code", "execution_count": None, "outputs": [], "metadata": {}, "id": f"{gid}-test",
                "source": _as_lines(f"# Graded by the hidden tests (tests/hidden/test_{stem}.py) of the exercise "
                                    f"{gid!r}; this cell is locked.\n")}
    cell.setdefault("metadata", {})["nbgrader"] = _nbgrader(f"{gid}_test", grade=True, solution=False, locked=True,
                                                            points=nbg.get("points", 1))
    return cell


def answer_cells(spec) -> list[dict]:
    """Cells asking for the written answers of one ablation: a locked question cell, then one markdown
    answer cell (graded by hand: nbgrader ``grade: true, solution: true``) for the hypothesis and one for
    the implication."""
    arms = ", ".join(f"`{a}`" for a in spec.arms)
    question = (f"### Ablation `{spec.name}`: {spec.title}\n\nArms {arms}, compared on `{spec.metric}`. "
                f"Before you run it, write your **hypothesis** (which arm wins, by about how much, and why). "
                f"After you run it, write the **implication** of what you measured (was the difference "
                f"beyond run-to-run noise? what does it say about the component?).\n")
    cells = [{"cell_type": "markdown", "source": _as_lines(question), "id": f"{spec.name}-question", "metadata": {
        "nbgrader": _nbgrader(f"{spec.name}_question", grade=False, solution=False, locked=True)}}]
    for part in ("hypothesis", "implication"):
        cells.append({"cell_type": "markdown", "source": [f"**{part.capitalize()}:** YOUR ANSWER HERE\n"],
                      "id": f"{spec.name}-{part}",
                      "metadata": {"nbgrader": _nbgrader(f"{spec.name}_{part}", grade=True, solution=True,
                                                         locked=False, points=1)}})
    return cells


def _read_notebook(path: Path) -> dict:
    nb = read_json(path, AssignmentError, "notebook JSON")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise AssignmentError(f"{path}: not a notebook (no 'cells' list)")
    return nb


def _display(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def make_assignments(notebooks: list[Path], out: Path, specs: list | None = None) -> dict:
    """Write the student version of every notebook that has exercises, and
    ``manifest.json``; return the manifest. Nothing is written if a notebook is invalid.
    ``specs``: the ablation specs whose written answers the notebooks ask for (those whose
    ``notebook`` is the notebook's stem; default: every spec of ``configs/ablations/``)."""
    if specs is None:
        try:
            specs = [load_spec(n) for n in list_specs()]
        except SpecError as e:
            raise AssignmentError(str(e)) from e
    entries, skipped, outputs = [], [], {}
    for path in notebooks:
        nb = _read_notebook(Path(path))
        student, ids = strip_solutions(nb, str(path))
        if not ids:
            skipped.append(Path(path).name)
            continue
        for spec in (s for s in specs if s.notebook == Path(path).stem):
            student["cells"] += answer_cells(spec)
        if not any("id" in c for c in nb["cells"]):        # nbformat < 4.5: cells carry no id
            for c in student["cells"]:
                c.pop("id", None)
        outputs[Path(path).name] = _dump(student)
        setup = sum(SETUP_TAG in _tags(c) for c in nb["cells"])
        graded = [c["metadata"]["nbgrader"]["grade_id"] for c in student["cells"]
                  if c.get("metadata", {}).get("nbgrader", {}).get("grade") is True]
        entries.append({"notebook": Path(path).name, "source": _display(path), "graded_ids": ids,
                        "setup_cells": setup, "graded_cells": graded})
    names = [e["notebook"] for e in entries]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise AssignmentError(f"two notebooks named {', '.join(sorted(dup))}: the student copies would collide")
    manifest = {"schema_version": MANIFEST_VERSION, "generated_by": "python -m restore_lib.course.assignments",
                "tags": {"exercise": SOLUTION_TAG, "setup": SETUP_TAG}, "notebooks": entries,
                "without_exercises": skipped}
    for name, text in outputs.items():
        os.chmod(atomic_write_text(Path(out) / name, text), STUDENT_FILE_MODE)
    os.chmod(atomic_write_text(Path(out) / "manifest.json", json.dumps(manifest, indent=2) + "\n"), STUDENT_FILE_MODE)
    return manifest


# ---------------------------------------------------------------------- hidden tests
def student_notebook(stem: str, root: Path | None = None) -> Path:
    """The notebook a hidden test grades: ``$RESTORE_STUDENT_DIR/<stem>.ipynb`` when
    that variable is set (a student's submission), else ``<repo>/notebooks/<stem>.ipynb``
    (the reference solution, so the hidden tests also check the solutions)."""
    base = os.environ.get(STUDENT_DIR_ENV)
    path = Path(base) / f"{stem}.ipynb" if base else (root or repo_root()) / "notebooks" / f"{stem}.ipynb"
    if not path.is_file():
        where = f"${STUDENT_DIR_ENV}={base}" if base else "the notebooks folder"
        raise AssignmentError(f"{path}: no such notebook (looked in {where})")
    return path


def run_student_cells(notebook_path: str | os.PathLike, grade_ids: str | list[str], *,
                      setup_tag: str = SETUP_TAG) -> dict:
    """Run the setup cells and the named exercise cells of a notebook in this
    process, in notebook order; return the namespace they filled (a dict).

    Only setup cells that come before the last requested exercise run. The
    objects are real Python objects (functions, classes), so a test can call
    them on tensors and compare with ``restore_lib``. A cell that raises gives
    :class:`StudentCodeError` naming the notebook, cell and grade_id.
    """
    path = Path(notebook_path)
    nb = _read_notebook(path)
    ids = [grade_ids] if isinstance(grade_ids, str) else list(grade_ids)
    exercises = {gid: i for i, gid in exercise_cells(nb, str(path))}
    unknown = [g for g in ids if g not in exercises]
    if unknown:
        raise AssignmentError(f"{path}: no exercise with grade_id {', '.join(map(repr, unknown))} "
                              f"(has: {', '.join(exercises) or 'none'})")
    targets = {exercises[g]: g for g in ids}
    last = max(targets)
    module = types.ModuleType(f"_student_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{next(_counter)}")
    sys.modules[module.__name__] = module  # dataclasses and pickle look classes up by module
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code" or i > last or not (i in targets or setup_tag in _tags(cell)):
            continue
        what = f"exercise {targets[i]!r}" if i in targets else "setup cell"
        src = _source(cell)
        _check_python(src, f"{path}: cell {i} ({what})")
        filename = f"<{path.name} cell {i}>"
        linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
        try:
            exec(compile(src, filename, "exec"), module.__dict__)  # noqa: S102 - running notebook cells is the point
        except Exception as e:
            raise StudentCodeError(f"{path}: cell {i} ({what}) raised {type(e).__name__}: {e}") from e
    return module.__dict__


def execute_until_exercise(notebook_path: str | os.PathLike, timeout: int = 600,
                           kernel_name: str = "python3") -> int:
    """Execute a (student) notebook in a Jupyter kernel up to and including its first
    exercise cell; return that cell's index.

    Every cell before the exercise must run without error; the exercise cell
    may raise ``NotImplementedError`` (a stub at top level) but nothing else.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(notebook_path)
    nb = nbformat.reads(json.dumps(_read_notebook(path)), as_version=4)
    exercises = exercise_cells(nb, str(path))
    if not exercises:
        raise AssignmentError(f"{path}: has no exercise cell (tag {SOLUTION_TAG!r})")
    first = exercises[0][0]
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells[: first + 1]):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as e:
                if i == first and e.ename == "NotImplementedError":
                    break
                line = next((ln for ln in _source(cell).splitlines() if ln.strip()), "")[:80]
                raise AssignmentError(f"{path}: cell {i} ({line!r}) raised {e.ename}: {e.evalue}") from e
    return first


# ---------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore_lib.course.assignments",
                                 description="Write student notebooks (solutions removed) and manifest.json.")
    ap.add_argument("--out", type=Path, default=Path("assignments"), help="output folder (default: assignments)")
    ap.add_argument("--notebooks", nargs="*", type=Path,
                    help="notebooks to convert (default: notebooks/NN_*.ipynb of the repo)")
    ap.add_argument("--verify", action="store_true",
                    help="also execute each student notebook up to its first exercise (slow)")
    args = ap.parse_args(argv)
    if args.notebooks is None:
        args.notebooks = list_notebooks(repo_root())
    try:
        manifest = make_assignments(args.notebooks, args.out)
        for e in manifest["notebooks"]:
            print(f"{args.out / e['notebook']}: {len(e['graded_ids'])} exercise(s): {', '.join(e['graded_ids'])}")
        for name in manifest["without_exercises"]:
            print(f"{name}: no {SOLUTION_TAG!r} cells, no student version")
        if args.verify:
            for e in manifest["notebooks"]:
                first = execute_until_exercise(args.out / e["notebook"])
                print(f"{args.out / e['notebook']}: cells before the first exercise (cell {first}) run")
    except AssignmentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

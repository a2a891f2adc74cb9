"""Student notebooks: solutions stripped (nbgrader convention), the student copy
runs up to its first exercise (one kernel), hidden tests accept the reference
solution and reject a wrong student implementation."""
import ast
import json

import nbformat
import pytest
import torch

from restore_lib import metrics
from restore_lib.course.assignments import (AssignmentError, StudentCodeError, execute_until_exercise, exercise_cells,
                                     main, run_student_cells, strip_solutions, student_notebook)

PSNR_SOLUTION = '''def psnr(pred, target, data_range=1.0):
    """PSNR in dB of one image pair."""
    ### BEGIN SOLUTION
    err = mse(pred, target)
    return 10.0 * math.log10(data_range ** 2 / err)
    ### END SOLUTION
'''
PSNR_STUDENT = '''def psnr(pred, target, data_range=1.0):
    """PSNR in dB of one image pair."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''
CLIP_SOLUTION = '''def clip_all(xs, lo=0.0, hi=1.0):
    out = []
    for x in xs:
        if x is not None:
            ### BEGIN SOLUTION
            x = x.clamp(lo, hi)
            ### END SOLUTION
        out.append(x)
    return out'''
L1_SOLUTION = '''### BEGIN SOLUTION
def l1(a, b):
    return float((a - b).abs().mean())
### END SOLUTION
'''
HIDDEN = '''assert callable(psnr)
### BEGIN HIDDEN TESTS
assert "SECRET_HIDDEN"
### END HIDDEN TESTS
'''
SOLUTION_TEXT = ("BEGIN SOLUTION", "END SOLUTION", "math.log10", "mse(pred, target)", "x.clamp(lo, hi)", "def l1",
                 "SECRET_HIDDEN", "HIDDEN TESTS")


def exercise(src, gid):
    c = nbformat.v4.new_code_cell(src)
    c.metadata["nbgrader"] = {"grade_id": gid, "solution": True, "grade": False, "locked": False,
                              "schema_version": 3}
    c.metadata["tags"] = ["student-impl"]
    return c


def code(src, *tags, outputs=()):
    c = nbformat.v4.new_code_cell(src)
    if tags:
        c.metadata["tags"] = list(tags)
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in outputs]
    c.execution_count = 1 if outputs else None
    return c


def build_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Metrics exercises"),
        code("data_range = 1.0\n", "parameters", "assignment-setup"),
        code("import math\n\ndef mse(a, b):\n    return float(((a.double() - b.double()) ** 2).mean())\n",
             "assignment-setup"),
        code('print("a cell hidden tests skip")\n', outputs=["a cell hidden tests skip\n"]),
        exercise(PSNR_SOLUTION, "psnr"),
        exercise(CLIP_SOLUTION, "clip_all"),
        exercise(L1_SOLUTION, "l1"),
        code(HIDDEN),
    ]
    nb.cells[4].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=2)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(nbformat.writes(nb))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Source notebooks and their student versions written by the CLI."""
    d = tmp_path_factory.mktemp("assign")
    (d / "notebooks").mkdir()
    src = d / "notebooks" / "07_metrics.ipynb"
    src.write_text(json.dumps(build_notebook()))
    plain = d / "notebooks" / "08_plain.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, plain)
    assert main(["--out", str(d / "out"), "--notebooks", str(src), str(plain)]) == 0
    return d


# ---------------------------------------------------------------------- hidden tests (as a teacher writes them)
def hidden_test_psnr(ns):
    g = torch.Generator().manual_seed(0)
    for data_range in (1.0, 255.0):
        a = torch.rand(1, 3, 16, 16, generator=g) * data_range
        b = a + 0.05 * data_range * torch.randn(1, 3, 16, 16, generator=g)
        want = metrics.psnr(a, b, data_range=data_range)
        assert ns["psnr"](a, b, data_range=data_range) == pytest.approx(want, rel=1e-9)


def hidden_test_clip_and_l1(ns):
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 5, generator=g) for _ in range(3)] + [None]
    got = ns["clip_all"](xs)
    assert all(torch.equal(o, x.clamp(0, 1)) for o, x in zip(got[:3], xs)) and got[3] is None
    a, b = torch.rand(4, 4, generator=g), torch.rand(4, 4, generator=g)
    assert ns["l1"](a, b) == pytest.approx(float(torch.nn.functional.l1_loss(a, b)), rel=1e-6)


# ---------------------------------------------------------------------- stripping
def test_solutions_are_stripped(made):
    text = (made / "out" / "07_metrics.ipynb").read_text()
    for s in SOLUTION_TEXT:
        assert s not in text, s
    nb = json.loads(text)
    cells = nb["cells"]
    assert "".join(cells[4]["source"]) == PSNR_STUDENT
    clip = "".join(cells[6]["source"])
    assert "        if x is not None:\n            # YOUR CODE HERE\n            raise NotImplementedError()\n" \
           "        out.append(x)" in clip
    assert "".join(cells[8]["source"]) == "# YOUR CODE HERE\nraise NotImplementedError()\n"
    assert "".join(cells[9]["source"]) == "assert callable(psnr)\n"
    # each exercise is followed by its locked, graded test cell: the hidden-tests cell, or a new one
    assert len(cells) == 10
    for i, gid in ((5, "psnr"), (7, "clip_all"), (9, "l1")):
        assert cells[i]["cell_type"] == "code" and cells[i]["metadata"]["nbgrader"] == {
            "grade_id": f"{gid}_test", "grade": True, "solution": False, "locked": True, "points": 1,
            "schema_version": 3}
    assert "tests/hidden/test_07_metrics.py" in "".join(cells[5]["source"]) and "'psnr'" in "".join(cells[5]["source"])
    for c in cells:
        if c["cell_type"] == "code":
            ast.parse("".join(c["source"]))
            assert c["outputs"] == [] and c["execution_count"] is None
    assert cells[4]["metadata"]["nbgrader"]["grade_id"] == "psnr" and cells[4]["metadata"]["tags"] == ["student-impl"]
    assert cells[2]["metadata"]["tags"] == ["assignment-setup"]
    assert "".join(cells[2]["source"]) == "".join(build_notebook()["cells"][2]["source"])


def test_manifest(made):
    m = json.loads((made / "out" / "manifest.json").read_text())
    assert m["schema_version"] == 1 and m["tags"] == {"exercise": "student-impl", "setup": "assignment-setup"}
    assert m["notebooks"] == [{"notebook": "07_metrics.ipynb", "source": str(made / "notebooks" / "07_metrics.ipynb"),
                               "graded_ids": ["psnr", "clip_all", "l1"], "setup_cells": 2,
                               "graded_cells": ["psnr_test", "clip_all_test", "l1_test"]}]
    assert m["without_exercises"] == ["08_plain.ipynb"] and not (made / "out" / "08_plain.ipynb").exists()


def test_stripped_notebook_runs_until_first_exercise(made, tmp_path):
    assert execute_until_exercise(made / "out" / "07_metrics.ipynb", timeout=60) == 4
    # the check can fail: a broken setup cell is named
    nb = json.loads((made / "out" / "07_metrics.ipynb").read_text())
    nb["cells"][2]["source"] = ["import no_such_module_here\n"]
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps(nb))
    with pytest.raises(AssignmentError, match=r"bad.ipynb: cell 2 \('import no_such_module_here'\) raised "
                                              r"ModuleNotFoundError"):
        execute_until_exercise(bad, timeout=60)


# ---------------------------------------------------------------------- hidden tests
def test_reference_solution_passes_hidden_tests(made):
    nb = made / "notebooks" / "07_metrics.ipynb"
    ns = run_student_cells(nb, "psnr")
    hidden_test_psnr(ns)
    assert "clip_all" not in ns and ns["data_range"] == 1.0   # only setup cells and the exercise ran
    hidden_test_clip_and_l1(run_student_cells(nb, ["clip_all", "l1"]))


def test_wrong_student_implementation_fails(made, tmp_path):
    nb = json.loads((made / "out" / "07_metrics.ipynb").read_text())
    src = "".join(nb["cells"][4]["source"]).replace(
        "    # YOUR CODE HERE\n    raise NotImplementedError()\n",
        "    return 20.0 * math.log10(data_range / mse(pred, target))\n")   # a plausible mistake
    nb["cells"][4]["source"] = src
    wrong = tmp_path / "alice.ipynb"
    wrong.write_text(json.dumps(nb))
    with pytest.raises(AssertionError):
        hidden_test_psnr(run_student_cells(wrong, "psnr"))


def test_untouched_student_copy(made):
    student = made / "out" / "07_metrics.ipynb"
    ns = run_student_cells(student, "psnr")
    with pytest.raises(NotImplementedError):
        hidden_test_psnr(ns)
    with pytest.raises(StudentCodeError, match=r"07_metrics.ipynb: cell 8 \(exercise 'l1'\) raised "
                                               r"NotImplementedError"):
        run_student_cells(student, "l1")
    with pytest.raises(AssignmentError, match="no exercise with grade_id 'ssim'.*has: psnr, clip_all, l1"):
        run_student_cells(student, "ssim")


def test_student_notebook_env(made, monkeypatch):
    monkeypatch.setenv("RESTORE_STUDENT_DIR", str(made / "out"))
    assert student_notebook("07_metrics") == made / "out" / "07_metrics.ipynb"
    with pytest.raises(AssignmentError, match="RESTORE_STUDENT_DIR"):
        student_notebook("99_missing")
    monkeypatch.delenv("RESTORE_STUDENT_DIR")
    assert student_notebook("07_metrics", root=made) == made / "notebooks" / "07_metrics.ipynb"


# ---------------------------------------------------------------------- convention errors
def _broken(edit):
    nb = build_notebook()
    edit(nb["cells"])
    return nb


@pytest.mark.parametrize("edit, message", [
    (lambda c: c[3].update(source="x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n"),
     "cell 3 contains '### BEGIN SOLUTION'/'### END SOLUTION' but is not an exercise"),
    (lambda c: c[4]["metadata"].pop("nbgrader"), "cell 4 is tagged 'student-impl' but lacks metadata"),
    (lambda c: c[4]["metadata"].pop("tags"), "cell 4 has nbgrader.solution=true but not the tag"),
    (lambda c: c[5]["metadata"]["nbgrader"].update(grade_id="psnr"), "cell 5: grade_id 'psnr' is already used"),
    (lambda c: c[6].update(source="def l1(a, b):\n    return 0\n"), "cell 6 (grade_id 'l1') has no"),
    (lambda c: c[6].update(source="def l1(a, b):\n### BEGIN SOLUTION\n    return 0\n### END SOLUTION\n"),
     "not valid Python after removing the solution"),
    (lambda c: c[6].update(source="### BEGIN SOLUTION\nx = 1\n"), "a solution region is not closed"),
    (lambda c: c[6].update(source="### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION\n"),
     "line 4: '### END SOLUTION' without a matching BEGIN"),
    (lambda c: c[6].update(source="x = 1  ### BEGIN SOLUTION\n### END SOLUTION\n"), "must be alone on its line"),
    (lambda c: c.__setitem__(0, {**c[0], "source": "### BEGIN SOLUTION"}), "cell 0 is a markdown cell"),
])
def test_convention_errors(edit, message):
    with pytest.raises(AssignmentError) as e:
        strip_solutions(_broken(edit), "nb.ipynb")
    assert "nb.ipynb: " in str(e.value) and message in str(e.value)


def test_cli_error_names_file(tmp_path, capsys):
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{")
    assert main(["--out", str(tmp_path / "out"), "--notebooks", str(bad)]) == 2
    assert f"{bad}: not valid notebook JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_exercise_cells_in_order():
    assert exercise_cells(build_notebook()) == [(4, "psnr"), (5, "clip_all"), (6, "l1")]


def test_answer_cells_for_ablations_are_collected_by_the_grader_and_files_are_0644(made, tmp_path):
    import os
    import stat

    from restore_lib.course.ablations import load_spec
    from restore_lib.course.assignments import make_assignments
    from restore_lib.course.grade import collect_answers

    spec_path = tmp_path / "gates.yaml"
    spec_path.write_text("schema_version: 1\nname: gates\ntitle: Gates\nnotebook: 07_metrics\n"
                         "arms: {a: {}, b: {x: 1}}\nmetric: main/average/PSNR\nhigher_is_better: true\n")
    old = os.umask(0o077)
    try:
        make_assignments([made / "notebooks" / "07_metrics.ipynb"], tmp_path / "out", specs=[load_spec(spec_path)])
    finally:
        os.umask(old)
    for p in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    nb = json.loads((tmp_path / "out" / "07_metrics.ipynb").read_text())
    tail = nb["cells"][-3:]
    assert [c["metadata"]["nbgrader"]["grade_id"] for c in tail] == ["gates_question", "gates_hypothesis",
                                                                     "gates_implication"]
    assert tail[0]["metadata"]["nbgrader"]["locked"] is True and tail[0]["metadata"]["nbgrader"]["grade"] is False
    for c in tail[1:]:
        assert c["cell_type"] == "markdown" and c["metadata"]["nbgrader"] == {
            "grade_id": c["metadata"]["nbgrader"]["grade_id"], "grade": True, "solution": True, "locked": False,
            "points": 1, "schema_version": 3}
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    assert exercise_cells(nb, "student copy") == [(4, "psnr"), (6, "clip_all"), (8, "l1")]
    # a student answers; the grader collects the answers for manual grading
    tail[1]["source"] = ["**Hypothesis:** arm a wins by 0.2 dB.\n"]
    sub = tmp_path / "alice"
    sub.mkdir()
    (sub / "07_metrics.ipynb").write_text(json.dumps(nb))
    answers, problems = collect_answers(sub)
    assert problems == [] and answers == [("07_metrics.ipynb", "gates_hypothesis",
                                           "**Hypothesis:** arm a wins by 0.2 dB."),
                                          ("07_metrics.ipynb", "gates_implication",
                                           "**Implication:** YOUR ANSWER HERE")]

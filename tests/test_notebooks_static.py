"""Static notebook contract: clean metadata, one parameters cell with the
profile/device/seed/out_dir parameters, profile YAMLs that only name real
parameters, no absolute paths, reasonable size."""
import ast
import json
from pathlib import Path

import papermill as pm
import pytest
import yaml

from restore_lib.course.nbclean import _dump, clean_notebook, notebook_problems
from restore_lib.course.reproduce import list_notebooks
from restore_lib.utils import repo_root

NOTEBOOKS = list_notebooks()
REQUIRED = {"profile", "device", "seed", "out_dir"}


def test_there_are_notebooks():
    assert [nb.stem for nb in NOTEBOOKS][:1] == ["00_quickstart"]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean(nb_path):
    raw = nb_path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    assert notebook_problems(nb) == []
    assert _dump(clean_notebook(nb)) == raw, "run: python -m restore_lib.course.nbclean " + str(nb_path)
    assert len(raw) < 2_500_000, "keep notebooks under ~2 MB (smaller figures)"
    assert str(Path.home()) not in raw and "/tmp/" not in raw


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_code_cell_is_valid_python(nb_path):
    """A cell edited as text (e.g. a line removed inside an indented block) fails here, not minutes into a run."""
    for i, cell in enumerate(json.loads(nb_path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "\n".join(line for line in "".join(cell["source"]).splitlines()
                        if not line.lstrip().startswith(("%", "!")))           # IPython magics and shell lines
        try:
            ast.parse(src)
        except SyntaxError as e:
            pytest.fail(f"{nb_path.name}: cell {i} is not valid Python: {e}")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_and_profiles(nb_path):
    params = pm.inspect_notebook(str(nb_path))
    assert REQUIRED <= set(params), f"missing parameters {REQUIRED - set(params)}"
    assert params["profile"]["default"] == '"smoke"' and params["device"]["default"] == '"auto"'
    assert params["out_dir"]["default"] == '"auto"'
    for profile in ("smoke", "gpu"):
        cfg = repo_root() / "configs" / nb_path.stem / f"{profile}.yaml"
        assert cfg.is_file(), f"{cfg} missing"
        values = yaml.safe_load(cfg.read_text()) or {}
        assert set(values) <= set(params), f"{cfg}: unknown {set(values) - set(params)}"
        assert values.get("profile") == profile


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_have_no_errors_and_checked_cells_exist(nb_path):
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "commit notebooks with their outputs (make notebooks)"
    checked = [c for c in code if "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "mark at least one stable-output cell with # NBVAL_CHECK_OUTPUT"
    for c in checked:
        assert c["outputs"], "a checked cell must have committed output"


def test_cleaning_drops_papermills_injected_parameters_cell():
    """papermill adds an 'injected-parameters' cell after the parameters cell; kept in a committed notebook it
    would override every edit a student makes to the parameters cell."""
    cell = {"cell_type": "code", "execution_count": 1, "outputs": [], "source": ["seed = 0\n"]}
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{**cell, "metadata": {"tags": ["parameters"]}},
                    {**cell, "metadata": {"tags": ["injected-parameters"]}, "source": ["seed = 7\n"]}]}
    assert "injected-parameters" in " ".join(notebook_problems(nb))
    cleaned = clean_notebook(nb)
    assert [c["source"] for c in cleaned["cells"]] == [["seed = 0\n"]] and notebook_problems(cleaned) == []

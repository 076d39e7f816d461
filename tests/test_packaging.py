"""Packaging: environment.yml in sync with pyproject; shipped data present; CLI entry point."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

CONDA_NAMES = {"matplotlib": "matplotlib-base", "igraph": "python-igraph",
               "dask[array]": "dask"}


def _req(spec: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", spec.strip())
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, ver = _req(dep)
            conda[name] = ver
    wanted = list(py["dependencies"]) + list(py["optional-dependencies"]["dask"]) + \
        list(py["optional-dependencies"]["notebooks"])
    for spec in wanted:
        name, ver = _req(spec)
        cname = CONDA_NAMES.get(name, name)
        assert cname in conda, f"{cname} (from pyproject {spec!r}) missing in environment.yml"
        assert conda[cname] == ver, f"{cname}: pyproject {ver!r} != environment.yml " \
                                    f"{conda[cname]!r}"
    assert conda["python"] == py["requires-python"]


def test_readme_states_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = 'pip install -e ".[test,docs]" && python -m pytest'
    assert test_cmd in readme and test_cmd in ci
    assert "pip install . && osteoimmune demo" in readme


def test_shipped_data_present():
    from osteoimmune._paths import data_root

    root = data_root()
    assert (root / "signatures" / "library.yaml").exists()
    assert (root / "registry.yaml").exists()
    assert any((root / "reference").glob("symbols_human.tsv.gz"))


def test_console_script_declared():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert py["scripts"]["osteoimmune"] == "osteoimmune.cli:main"

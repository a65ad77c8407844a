"""The Python versions chainkit promises are the ones CI tests, everywhere they are written."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _classifier_versions() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: 3."
    return sorted(
        (
            c.removeprefix("Programming Language :: Python :: ")
            for c in project["classifiers"]
            if c.startswith(prefix)
        ),
        key=lambda v: tuple(int(p) for p in v.split(".")),
    )


def test_readme_names_exactly_the_classifier_versions() -> None:
    versions = _classifier_versions()
    assert len(versions) >= 3
    line = next(
        ln
        for ln in (ROOT / "README.md").read_text().splitlines()
        if "(the versions CI tests)" in ln
    )
    assert re.findall(r"3\.\d+", line) == versions


def test_requires_python_is_the_lowest_classifier() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={_classifier_versions()[0]}"


def test_ci_runs_the_suite_on_every_classifier_version() -> None:
    # .ci/run reads the versions from the classifiers, so this checks it still does.
    script = (ROOT / ".ci" / "run").read_text()
    assert "Programming Language :: Python ::" in script
    assert "make test" in script


def test_this_python_is_a_supported_one() -> None:
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in _classifier_versions()

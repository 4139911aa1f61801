"""`bekb --version` names the installed version, which the CHANGELOG's latest release is."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from cli_support import hashing_app, invoke

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version() -> None:
    result = invoke(hashing_app(), ["--version"])
    assert (result.code, result.out) == (0, f"bekb {version('bekb')}\n")


def test_the_changelog_releases_the_version_in_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    releases = re.findall(
        r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$",
        (REPO / "CHANGELOG.md").read_text(encoding="utf-8"),
        re.M,
    )
    assert releases and releases[0] == project["version"]

"""CITATION.cff is valid Citation File Format and agrees with pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_citation_file_validates_against_the_cff_schema():
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.citation-file-format"]
    result = subprocess.run([*command, str(REPO / "CITATION.cff")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_citation_names_the_packages_version_and_license_and_the_paper():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert citation["version"] == project["version"]
    assert citation["license"] == project["license"]["text"]
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert [ref["title"] for ref in citation["references"]] == ["Dynamic Routing Between Capsules"]

"""The manifest and hacs.json are what hassfest and HACS accept."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
MANIFEST = json.loads((ROOT / "custom_components/mail_relay/manifest.json").read_text())

HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
    "render_readme",
}


def test_manifest_order_and_required_keys() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert MANIFEST["domain"] == "mail_relay"
    assert MANIFEST["config_flow"] is True
    assert MANIFEST["iot_class"] == "cloud_push"
    assert MANIFEST["integration_type"] == "service"
    for key in (
        "version",
        "codeowners",
        "documentation",
        "issue_tracker",
        "loggers",
        "requirements",
    ):
        assert MANIFEST[key], key


def test_requirements_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in MANIFEST["requirements"]:
        assert requirement in project["dependencies"]
    assert any(r.startswith("aiosmtplib>=5.1.2") for r in MANIFEST["requirements"])
    assert MANIFEST["version"] == project["version"]


def test_hacs_json() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= HACS_KEYS
    assert hacs["name"] == MANIFEST["name"]
    lock = (ROOT / "requirements.lock").read_text()
    assert f"homeassistant=={hacs['homeassistant']}" in lock

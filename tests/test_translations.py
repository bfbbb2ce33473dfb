"""strings.json, en.json and fr.json: same keys, every field described, every error translated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from custom_components.mail_relay.errors import TABLE as ERROR_TABLE

ROOT = Path(__file__).parents[1] / "custom_components" / "mail_relay"
STRINGS = json.loads((ROOT / "strings.json").read_text())
EN = json.loads((ROOT / "translations" / "en.json").read_text())
FR = json.loads((ROOT / "translations" / "fr.json").read_text())


def keys(tree: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        out |= keys(value, path) if isinstance(value, dict) else {path}
    return out


def test_english_is_strings_json() -> None:
    assert EN == STRINGS


def test_french_has_the_same_keys_and_real_text() -> None:
    assert keys(FR) == keys(STRINGS)
    flat_en = {k: v for k, v in _flat(STRINGS).items()}
    flat_fr = _flat(FR)
    same = [k for k, v in flat_fr.items() if v == flat_en[k] and len(v) > 12]
    assert same == []
    for key, text in flat_fr.items():
        assert set(re.findall(r"{\w+}", text)) == set(
            re.findall(r"{\w+}", flat_en[key])
        ), key


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out |= _flat(value, path)
        else:
            out[path] = value
    return out


@pytest.mark.parametrize("section", ["config", "options"])
def test_every_field_has_a_description(section: str) -> None:
    for step, content in STRINGS[section]["step"].items():
        assert set(content.get("data", {})) == set(
            content.get("data_description", {})
        ), step
        # A form section (data_entry_flow.section) has a title and its own fields.
        for name, part in content.get("sections", {}).items():
            assert part["name"], (step, name)
            assert part["data"], (step, name)
            assert set(part["data"]) == set(part["data_description"]), (step, name)


def test_every_error_and_abort_of_the_flow_is_translated() -> None:
    source = (ROOT / "config_flow.py").read_text()
    used = set(
        re.findall(
            r'"(invalid_\w+|\w+_required|cannot_connect|timeout|tls_error|starttls_unavailable|unknown)"',
            source,
        )
    )
    # The keys for core errors come from the one error table (errors.py).
    used |= {row.flow for row in ERROR_TABLE}
    assert used >= {
        "invalid_auth",
        "oauth_required",
        "cannot_connect",
        "timeout",
        "tls_error",
        "starttls_unavailable",
        "unknown",
        "app_password_required",
    }
    errors = set(STRINGS["config"]["error"]) | set(STRINGS["options"]["error"])
    assert used <= errors
    assert {"already_configured", "reauth_successful", "reconfigure_successful"} <= set(
        STRINGS["config"]["abort"]
    )

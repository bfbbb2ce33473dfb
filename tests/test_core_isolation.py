"""The mail core must never import Home Assistant (it is also the CLI's library)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
CORE = ROOT / "custom_components" / "mail_relay" / "mail"
CLI = ROOT / "mail_relay_cli"


def test_core_sources_do_not_import_homeassistant() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                names = ["(relative import leaving mail/)"]
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] == "homeassistant" or name.startswith("(")
            ]
    assert offenders == []
    assert len(list(CORE.rglob("*.py"))) >= 4


def test_importing_core_and_cli_loads_no_homeassistant_module() -> None:
    modules = sorted(
        "custom_components.mail_relay.mail." + p.stem
        for p in CORE.glob("*.py")
        if p.stem != "__init__"
    ) + sorted(
        "mail_relay_cli." + p.stem
        for p in CLI.glob("*.py")
        if p.stem not in ("__init__", "__main__")
    )
    assert "mail_relay_cli.app" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'homeassistant']\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    # The way the mail-relay command imports the core: without the parent
    # package's __init__ (which is Home Assistant code).
    prelude = "import mail_relay_cli\nmail_relay_cli._bare_parents()\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

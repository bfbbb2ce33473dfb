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
        # mail/x.py may go up one level (``from .x``), mail/imap/x.py two.
        depth = len(path.relative_to(CORE).parts)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > depth:
                names = ["(relative import leaving mail/)"]
            offenders += [
                f"{path.relative_to(CORE)}: {name}"
                for name in names
                if name.split(".")[0] == "homeassistant" or name.startswith("(")
            ]
    assert offenders == []
    assert len(list(CORE.rglob("*.py"))) >= 4


def test_importing_core_and_cli_loads_no_homeassistant_module() -> None:
    modules = sorted(
        ".".join(["custom_components.mail_relay.mail", *p.relative_to(CORE).parts])
        .removesuffix(".py")
        .removesuffix(".__init__")
        for p in CORE.rglob("*.py")
        if p.relative_to(CORE).parts != ("__init__.py",)
    ) + sorted(
        "mail_relay_cli." + p.stem
        for p in CLI.glob("*.py")
        if p.stem not in ("__init__", "__main__")
    )
    assert "mail_relay_cli.app" in modules
    assert "custom_components.mail_relay.mail.imap.adapter" in modules
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


# -- nothing outside mail/ uses a private name of mail/ -----------------------

MAIL = "custom_components.mail_relay.mail"


def _is_mail(module: str) -> bool:
    return module == MAIL or module.startswith(MAIL + ".")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_mail_uses(source: str, package: str) -> list[str]:
    """Imports and attribute reads of private ``mail`` names in one module.

    ``package`` is the module's package, for relative imports. Names bound
    to something of ``mail`` (a module, a class) are followed into attribute
    chains: ``imap._Protocol``, ``ImapClient._login``.
    """
    tree = ast.parse(source)
    bound: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                if _is_mail(module) and _private(alias.name):
                    found.append(
                        f"line {node.lineno}: from {module} import {alias.name}"
                    )
                if _is_mail(f"{module}.{alias.name}"):
                    bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_mail(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"line {node.lineno}: import {alias.name}")
                    bound.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root: ast.expr = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if (
                isinstance(root, ast.Name)
                and root.id in bound
                and (
                    root.id != "custom_components" or _is_mail(ast.unparse(node.value))
                )
            ):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_private_uses() -> None:
    adapter = "custom_components.mail_relay"
    bad = (
        "from .mail.pop3 import _Client\n"
        "from .mail import imap\n"
        "from .mail.imap import ImapClient\n"
        "import custom_components.mail_relay.mail.smtp as smtp\n"
        "imap._Protocol, ImapClient._login, smtp._Wire, imap.quote, imap.__name__\n"
        "import custom_components.mail_relay.mail.pop3\n"
        "from custom_components.mail_relay import mail\n"
        "custom_components.mail_relay.mail.pop3._Client, mail.imap._Protocol\n"
        "custom_components.mail_relay._setup\n"
    )
    assert private_mail_uses(bad, adapter) == [
        "line 1: from custom_components.mail_relay.mail.pop3 import _Client",
        "line 5: imap._Protocol",
        "line 5: ImapClient._login",
        "line 5: smtp._Wire",
        "line 8: custom_components.mail_relay.mail.pop3._Client",
        "line 8: mail.imap._Protocol",
    ]
    ok = "from .mail.imap import ImapClient\nfrom .coordinator import _x\nself._y\n"
    assert private_mail_uses(ok, adapter) == []


def test_nothing_outside_mail_uses_a_private_name_of_mail() -> None:
    files = [
        *(
            p
            for p in (ROOT / "custom_components").rglob("*.py")
            if CORE not in p.parents
        ),
        *CLI.rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    offenders = []
    for path in files:
        relative = path.relative_to(ROOT).with_suffix("")
        parts = relative.parts if relative.name == "__init__" else relative.parts[:-1]
        package = ".".join(p for p in parts if p != "__init__")
        offenders += [
            f"{path.relative_to(ROOT)} {use}"
            for use in private_mail_uses(path.read_text(), package)
        ]
    assert len(files) > 20
    assert offenders == []


def test_only_the_imap_adapter_imports_aioimaplib() -> None:
    importers = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "aioimaplib" for name in names):
                importers.append(str(path.relative_to(CORE)))
    assert importers == ["imap/adapter.py"]

"""Entry point of the ``mail-relay`` command, without Home Assistant.

Importing ``custom_components.mail_relay.mail.cli`` the usual way would first run
the integration's ``__init__``, which imports Home Assistant: seconds of start-up,
and a failure where Home Assistant is not installed. The command needs only the
mail core, so the two parent packages are registered as bare packages first.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def _bare_parents() -> None:
    root = Path(__file__).resolve().parent / "custom_components"
    for name, path in (
        ("custom_components", root),
        ("custom_components.mail_relay", root / "mail_relay"),
    ):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package


def main() -> int:
    """Run the command."""
    _bare_parents()
    from custom_components.mail_relay.mail.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())

"""The ``mail-relay`` command: check an account, watch mailboxes, send mail.

It runs the same mail core as the Home Assistant integration, without Home
Assistant: ``check`` is the setup wizard's login test with the conversation
on show, ``watch`` prints the integration's event payload as one JSON line per
new message, ``send`` is the ``send_mail`` action. POP3 polling is driven by
APScheduler here (Home Assistant's own scheduler drives it in the integration);
IMAP uses the watcher's IDLE. The package lives outside ``custom_components/``
so that HACS ships only the integration; exit codes are in ``errors``.

Passwords never come from the command line (other users can read it): a
prompt, the ``MAIL_RELAY_PASSWORD`` environment variable, ``--password-fd N``
or, in a ``--config`` file, ``password_env`` / ``password_file``.

Importing the mail core the usual way would first run the integration's
``__init__``, which imports Home Assistant: seconds of start-up, and a failure
where Home Assistant is not installed. The command needs only the mail core,
so ``main`` registers the two parent packages as bare packages before it
imports the command's modules.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def _bare_parents() -> None:
    root = Path(__file__).resolve().parent.parent / "custom_components"
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
    from .app import main as app_main  # after the bare parents

    return app_main()

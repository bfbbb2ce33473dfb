"""``python -m mail_relay_cli``: the ``mail-relay`` command."""

import sys

from . import main

sys.exit(main())

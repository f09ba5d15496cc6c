"""``python -m sipfarm``: the ``sipfarm`` command (how ``sipfarm up`` starts its members)."""

import sys

from .cli import main

sys.exit(main())

"""``python -m latbench.cli``: the ``latbench`` command."""

from __future__ import annotations

import sys

from latbench.cli.app import main

sys.exit(main())

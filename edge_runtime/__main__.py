"""``python -m edge_runtime`` = the ``br35h-edge`` command."""

import sys

from .cli import main

sys.exit(main())

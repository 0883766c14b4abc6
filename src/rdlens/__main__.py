"""``python -m rdlens`` is the same as the ``rdlens`` command."""

import sys

from rdlens.cli import main

sys.exit(main())

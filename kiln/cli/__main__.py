"""``python -m kiln.cli ...`` is the same as the ``kiln`` console script."""
import sys

from .main import main

sys.exit(main())

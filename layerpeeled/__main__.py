"""``python -m layerpeeled`` is the ``lpm`` command."""
import sys

from .cli import main

sys.exit(main())

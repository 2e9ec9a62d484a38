"""`python -m port.evaluate`."""
import sys

from port.evaluate.cli import main

sys.exit(main())

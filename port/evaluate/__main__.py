"""`python -m port.evaluate`."""
from port.evaluate.cli import console

console()

"""`python -m port.train`."""
from port.train.cli import console

console()

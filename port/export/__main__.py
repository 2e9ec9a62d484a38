"""`python -m port.export`."""
from port.entry import export

export()

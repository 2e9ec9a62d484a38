"""`python -m port.train`."""
from port.entry import train

train()

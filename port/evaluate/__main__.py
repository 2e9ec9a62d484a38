"""`python -m port.evaluate`."""
from port.entry import evaluate

evaluate()

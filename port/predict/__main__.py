"""`python -m port.predict`."""
from port.entry import predict

predict()

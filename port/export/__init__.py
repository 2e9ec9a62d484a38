"""Deployment: the whole network exported to ONNX (standard operators only) and OpenVINO, and run back through
ONNX Runtime or OpenVINO for parity checks and the authors' evaluation (`python -m port.export`)."""

"""The speed and memory measurements, run as `python -m bench.<script>` from the repository root."""

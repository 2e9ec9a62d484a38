"""Helpers of the port's tests (not shipped in the wheel): kernel devices and extension checks, evaluation data,
training data and thread settings."""

"""Tests of the inference fast path, int8 and the CPU capability module."""

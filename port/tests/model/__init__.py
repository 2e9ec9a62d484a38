"""Tests of the model, its config, names, loading and the weight families."""

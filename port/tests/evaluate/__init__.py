"""Tests of the authors' evaluation procedure and its CLI."""

"""Tests of the PSA, Interp, zoom-loss and train-mode BN operators: kernels against their references."""

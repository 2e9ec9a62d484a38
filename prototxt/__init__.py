"""Caffe network definitions (deploy and train) generated from `port.config.PSANetConfig`."""

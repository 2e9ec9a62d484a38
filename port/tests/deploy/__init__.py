"""Tests of export, prediction, class tables and visualisation."""

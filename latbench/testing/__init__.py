"""Test helpers shipped with latbench: a fake clock and the backend contract suite."""

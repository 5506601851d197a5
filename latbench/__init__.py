"""latbench: hardware-aware latency modeling and benchmarking for transformer encoders.

Importing latbench has no side effects: no files are read, no backends are loaded.
"""

__version__ = "0.1.0"

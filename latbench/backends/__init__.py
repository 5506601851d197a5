"""Backends: how a spec is prepared and run on a target. See ``base.Backend``."""

"""Test helpers shipped with latbench: a fake clock, a fake backend and the backend
contract suite (the predictor contract suite is ``latbench.predictors.testing``)."""

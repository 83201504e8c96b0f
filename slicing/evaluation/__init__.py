"""The IDLA paper's online protocol (H0 collect -> train -> H1 allocate -> H2 slice added), metrics, plots.

Imports no Ray: the whole experiment runs in one process.
"""

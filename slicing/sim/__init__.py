"""Vectorised system-level simulator (numpy only; imports no Ray, no torch).

Arrays are [cells, slices] with a slice mask; randomness is counter-based per cell (``rng``), so any split of
the population into shards reproduces the unsplit run exactly.
"""

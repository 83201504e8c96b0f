"""Benchmarks behind ``slicing bench``: ``core`` (simulator + IDLA vs the 0.05-grid oracle in one process),
``population`` (whole periods on K Ray shard actors), ``rl`` (env and RLlib sampling, batched inference),
``serve`` (the HTTP service on 127.0.0.1). Each returns one JSON-able dict; nothing in the library imports them.
"""

"""KPI records, history windows, augmentation, Parquet I/O; imports no Ray.

Modules:

* ``history``  -- ``History``: ring buffer of the last H periods of users and CQI per (cell, slice).
* ``samples``  -- ``Samples``: the columnar (x, z) -> r sample table and ``samples_from_report``.
* ``augment``  -- IDLA section V-B augmentation rules (1) and (2).
* ``parquet``  -- ``write_samples`` / ``read_samples`` with a checked schema (``DataFileError``).
* ``collect``  -- the H0 behaviour policy (``explore_policy``) and the collection loop (``collect``).
"""

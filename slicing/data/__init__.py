"""KPI records, history windows, augmentation, Parquet I/O; imports no Ray.

Modules:

* ``history``  -- ``History``: ring buffer of the last H periods of users and CQI per (cell, slice).
* ``samples``  -- ``Samples``: the columnar (x, z) -> r sample table and ``samples_from_report``.
* ``augment``  -- IDLA section V-B augmentation rules (1) and (2).
* ``parquet``  -- ``write_samples`` / ``read_samples`` with a checked schema (``DataFileError``).
* ``kpi``      -- the one KPI record schema (fields, ranges) and its columnar batch, for HTTP and runtime alike.
* ``features`` -- the IDLA feature vector z and the RL observations, built in one place each.

Collection under the exploring behaviour policy is a rollout of allocations, so it lives in the optim layer
(``slicing/optim/explore.py``, ``slicing/optim/rollout.py``): data sits below optim and does not import it.
"""

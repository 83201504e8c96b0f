"""Ray Tune sweeps (`slicing tune FILE`): the sweep file model (``spec``), the trainables and the runner (``run``).

Named ``sweeps`` rather than ``tune`` so that it never shadows ``ray.tune``.
"""

"""Ray Tune sweeps (`slicing tune FILE`): the sweep file model (``spec``), the trainables and the runner (``run``).

Named ``sweeps`` rather than ``tune`` so that it never shadows ``ray.tune``. It sits with serve and experiments at
the top of the package (it runs the library over a search space on Ray); nothing below imports it.
"""

"""One driver per paper experiment, apart from the library code it calls; plots and tables apart from computing.

- ``idla``: the IDLA paper's protocol (H0 collect, train, H1 allocate, H2 slice added); ``idla_plots`` its figures,
  ``metrics`` the per-phase metrics.
- ``safety``, ``imitation``: paper 003's safe DRL and imitation-learning experiments (RLlib underneath).
- ``transfer``: paper 002's similarity-guided transfer experiment.

May import everything below it (runtime, rl, transfer, optim, models, data, sim); nothing below imports it.
"""

"""The HTTP service's logic without HTTP (``serve_app.py`` at the top level holds only the routes).

Request/response models, settings from the environment, the replica's service, the local runner of
``slicing serve``. Nothing in ``slicing`` imports ``serve_app``.
"""

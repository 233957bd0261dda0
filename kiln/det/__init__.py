from . import datasets, engine, evaluation, structures, visualization  # noqa: F401

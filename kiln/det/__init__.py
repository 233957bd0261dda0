from . import datasets, engine, evaluation, models, structures, visualization  # noqa: F401

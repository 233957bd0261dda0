from . import datasets, engine, evaluation, models, structures, visualization  # noqa: F401
from .apis import DetInferencer, DetPredictor  # noqa: F401

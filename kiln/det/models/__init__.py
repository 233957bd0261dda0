"""Detection models: importing this package registers them in ``kiln.registry.MODELS``."""
from . import backbones, dense_heads, detectors, losses, necks, roi_heads, task_modules  # noqa: F401
from . import data_preprocessors  # noqa: F401
from . import test_time_augs  # noqa: F401

"""Experiment-tracker backends (MMEngine's names and arguments). Each imports its tracker on first use, so
registering them costs nothing; a missing tracker raises ImportError naming the package to install."""
from .aim import AimVisBackend
from .clearml import ClearMLVisBackend
from .dvclive import DVCLiveVisBackend
from .mlflow import MLflowVisBackend
from .wandb import WandbVisBackend

__all__ = ['MLflowVisBackend', 'WandbVisBackend', 'ClearMLVisBackend', 'DVCLiveVisBackend', 'AimVisBackend']

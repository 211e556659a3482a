"""Training with the papers' recipes: ``train(...)`` (also ``cnnzoo.train`` and ``cnnzoo train MODEL``).

Data flow: the CLI (``commands``) or ``train(...)`` (``api``) builds a ``RunConfig`` (``config``) -> ``prepare``
builds the ``Run`` -> per epoch ``train_epoch`` (each batch one ``sgd_step``), ``validate``, ``save`` ->
``finish`` (``trainer``; ``finish`` and the early ends in ``ends``).

- ``recipes``: ``Recipe`` (``--set field=value`` parsing, each recipe's ``Geometry``); ``recipe_table``: ``RECIPES``;
- ``schedules``: SGD from a recipe, learning-rate schedules (pure functions) and reduce-on-plateau;
- ``config``: ``RunConfig``, ``configure`` (new runs and resumed ones);
- ``runtime``: device, precision, random streams, torchrun/DDP; ``stops``: signals; ``guard``: stops every rank
  shares;
- ``trainer``: the loop (``loss``: a step's loss); ``evaluate``: top-1/top-5 and the confusion matrix; ``run_files``:
  the run directory.

The image pipeline is :mod:`cnnzoo.data`; checkpoints are :mod:`cnnzoo.checkpoint`.
"""

from ..checkpoint import CheckpointError, load_state, read_checkpoint, read_weights_metadata
from ..data import Data, load_data
from .api import train
from .config import RunConfig, configure
from .evaluate import evaluate
from .guard import NonFiniteLoss
from .recipe_table import RECIPES, get_recipe, list_recipes, resolve_recipe
from .recipes import Recipe, parse_overrides
from .runtime import Runtime
from .stops import TrainingInterrupted
from .trainer import Run, RunResult, finish, prepare, run_training, save, train_epoch, validate

__all__ = [
    "RECIPES",
    "CheckpointError",
    "Data",
    "NonFiniteLoss",
    "Recipe",
    "Run",
    "RunConfig",
    "RunResult",
    "Runtime",
    "TrainingInterrupted",
    "configure",
    "evaluate",
    "finish",
    "get_recipe",
    "list_recipes",
    "load_data",
    "load_state",
    "parse_overrides",
    "prepare",
    "read_checkpoint",
    "read_weights_metadata",
    "resolve_recipe",
    "run_training",
    "save",
    "train",
    "train_epoch",
    "validate",
]

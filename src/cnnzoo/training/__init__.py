"""Training with the papers' recipes: ``train(...)`` (also ``cnnzoo.train`` and ``cnnzoo train MODEL``).

- ``recipes``: the recipe table (``RECIPES``), ``--set field=value`` parsing;
- ``schedules``: learning-rate schedules (pure functions) and reduce-on-plateau;
- ``data``, ``folder``, ``cifar``: digits, image folders, CIFAR-format batches (restricted unpickler), synthetic;
- ``augment``, ``loaders``: batched on-device augmentation and the epoch iterators;
- ``checkpoint``, ``run_files``: atomic checkpoints and the run directory's files;
- ``distributed``, ``guard``: torchrun/DDP, and the stop decisions every rank shares (signals, non-finite loss);
- ``trainer``: the loop and ``evaluate``.
"""

from .checkpoint import CheckpointError, load_state, read_checkpoint, read_weights_metadata
from .data import Data, load_data
from .distributed import Runtime
from .guard import NonFiniteLoss
from .recipes import RECIPES, Recipe, get_recipe, list_recipes, parse_overrides, resolve_recipe
from .trainer import RunResult, TrainingInterrupted, evaluate, train

__all__ = [
    "RECIPES",
    "CheckpointError",
    "Data",
    "NonFiniteLoss",
    "Recipe",
    "RunResult",
    "Runtime",
    "TrainingInterrupted",
    "evaluate",
    "get_recipe",
    "list_recipes",
    "load_data",
    "load_state",
    "parse_overrides",
    "read_checkpoint",
    "read_weights_metadata",
    "resolve_recipe",
    "train",
]

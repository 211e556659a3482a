"""Training with the papers' recipes: ``train(...)`` (also ``cnnzoo.train`` and ``cnnzoo train MODEL``).

The data flow of a run::

    cnnzoo train ... (commands) | train(...) (api)
      -> RunConfig (config: the recipe resolved with --set, --model-arg typed; --resume reloads config.json)
      -> prepare(config) -> Run (trainer; run): device and precision (cnnzoo.device), data and loaders (cnnzoo.data),
         the network (finetune: --weights, --freeze), its memory layout (layout: timed, forced or resumed), SGD and
         the fitted schedule (schedules), DDP (distributed), the run directory and header (run_files), the resumed
         state (run.restore)
      -> per epoch: train_epoch, each batch one sgd_step; validate (cnnzoo.metrics); end_epoch: metrics.jsonl,
         best weights, last.pt (run.save)
      -> finish: summary.json -> RunResult

A signal, a dead loader worker or a non-finite loss or weights (stopping) ends the run early through the same
``finish``, with a checkpoint at the last good step.

- ``trainer``: the whole loop, and ``finish``; ``run``: ``Run``, ``RunResult``, the saved state (``save``/``restore``);
- ``config``: ``RunConfig``, ``configure`` (new runs and resumed ones), ``--model-arg`` parsing;
- ``recipes``: ``Recipe`` (``--set field=value`` parsing, each recipe's ``Geometry``) and ``RECIPES``, the papers' rows;
- ``schedules``: SGD from a recipe, the learning-rate schedules (pure functions), reduce-on-plateau, the schedule
  fitted to the run's length;
- ``stopping``: signals, dead workers, the non-finite guard: every early stop, decided alike on all ranks;
- ``distributed``: torchrun/DDP, collectives, per-rank random streams; ``finetune``: starting from weights;
- ``layout``: NCHW or channels-last, chosen by timing a few of the run's steps in each (and the bf16 suggestion);
- ``run_files``: the run directory and the console (header, epoch lines, progress bar); ``commands``: the CLI.

The image pipeline is :mod:`cnnzoo.data`; metrics are :mod:`cnnzoo.metrics`; checkpoints :mod:`cnnzoo.checkpoint`.
"""

from ..checkpoint import CheckpointError, load_state, read_checkpoint, read_weights_metadata
from ..data import Data, load_data
from ..metrics import classification_metrics
from ..metrics import classification_metrics as evaluate  # its former name here
from .api import train
from .config import RunConfig, configure
from .distributed import Runtime
from .recipes import RECIPES, Recipe, get_recipe, list_recipes, parse_overrides, resolve_recipe
from .run import Run, RunResult, save
from .stopping import NonFiniteLoss, TrainingInterrupted
from .trainer import finish, prepare, run_training, train_epoch, validate

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
    "classification_metrics",
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

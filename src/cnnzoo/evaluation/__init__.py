"""Evaluating trained networks: ``cnnzoo eval``, ``cnnzoo ensemble``, ``cnnzoo predict``.

- ``trained``: a checkpoint (or run directory) -> the network and its input pipeline; the evaluation data;
- ``tta``: test-time augmentation (flip, AlexNet/VGG 10-crop) as a module returning log(mean softmax);
- ``evaluator``: metrics (:mod:`cnnzoo.metrics`) with the trainer's loaders; ensembles; predictions for image files;
- ``commands``: ``cnnzoo eval``, ``ensemble`` and ``predict`` (``predict --onnx`` is :mod:`cnnzoo.exporting`'s).
"""

from .evaluator import check_same_classes, ensemble, evaluate_checkpoint, predict
from .trained import Trained, eval_data, load_trained, resolve_checkpoint
from .tta import TTA_MODES, TestTimeAugmentation

__all__ = [
    "TTA_MODES",
    "TestTimeAugmentation",
    "Trained",
    "check_same_classes",
    "ensemble",
    "eval_data",
    "evaluate_checkpoint",
    "load_trained",
    "predict",
    "resolve_checkpoint",
]

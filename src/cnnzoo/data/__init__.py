"""The image pipeline shared by training and evaluation.

- ``sources``: what a data set is (``Data``, resident ``TensorSource`` or ``FileSource`` splits), digits, synthetic,
  stratified splits, channel conversion;
- ``cluttered``: ``cluttered-digits``, a harder set generated offline from the digits (the lab's smoke scale);
- ``folder``, ``cifar``: image folders (hardened against bad files) and CIFAR-format batches (restricted unpickler);
- ``load``: ``load_data``, the ``--data`` dispatcher;
- ``augment``: ``Geometry`` and the papers' augmentation, batched on the device where the data allows;
- ``loaders``: ``make_loader``: seeded, shardable epoch iterators yielding normalised batches on the device.
"""

from .augment import Geometry
from .load import load_data
from .loaders import Loader, make_loader
from .sources import Data, FileSource, TensorSource

__all__ = ["Data", "FileSource", "Geometry", "Loader", "TensorSource", "load_data", "make_loader"]

"""Running an exported ONNX file with onnxruntime: :class:`OnnxNet` (the file behind the ``nn.Module`` interface)
and ``predict_onnx`` (what ``cnnzoo predict --onnx`` reports, with the file's embedded classes and preprocessing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..evaluation.evaluator import image_paths, top_k_of_images
from ..evaluation.trained import Trained
from .metadata import read_metadata, require


class OnnxNet(torch.nn.Module):
    """An ONNX file run by onnxruntime on the CPU, behind the ``nn.Module`` interface (float32 NCHW in, logits out).

    A file exported with a fixed batch size gets its inputs in chunks of that size (the last one zero-padded).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        require("onnxruntime")
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None  # None: a dynamic batch dimension

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.batch is None or len(x) == self.batch:
            return self.session.run(None, {self.input_name: x})[0]
        chunks = []
        for i in range(0, len(x), self.batch):
            part = x[i:i + self.batch]
            pad = np.zeros((self.batch - len(part), *x.shape[1:]), dtype=x.dtype)
            chunks.append(self.session.run(None, {self.input_name: np.concatenate([part, pad])})[0][:len(part)])
        return np.concatenate(chunks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(x.detach().cpu().float().contiguous().numpy()))


def predict_onnx(path: str | Path, images: list[str | Path], *, top_k: int = 5,
                 batch_size: int = 64) -> list[dict[str, Any]]:
    """What ``cnnzoo predict`` reports, from an exported ONNX file run by onnxruntime.

    Images are prepared with the file's embedded preprocessing (the run's validation view: short side resized to
    ``eval_resize``, centre crop to the input side, normalised with its mean/std) through the same loader as
    :func:`cnnzoo.evaluation.predict`; classes are the embedded names. Unreadable images are reported with
    ``"error"`` instead of predictions.
    """
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    path = Path(path)
    meta = read_metadata(path)
    missing = [k for k in ("classes", "input_size", "eval_resize", "mean", "std") if k not in meta]
    if missing:
        raise UserError(f"{path}: no cnnzoo preprocessing metadata ({', '.join(missing)} missing); "
                        "export it with `cnnzoo export`")
    net = OnnxNet(path)
    classes = tuple(meta["classes"])
    c, h, _ = meta["input_size"]
    trained = Trained(path=path, name=meta.get("model", path.stem), net=net, classes=classes,
                      num_classes=len(classes), in_channels=c, image_size=h, eval_resize=meta["eval_resize"],
                      mean=tuple(meta["mean"]), std=tuple(meta["std"]), data=None, val_fraction=0.2)
    return top_k_of_images(net, trained, image_paths(images), top_k=top_k, batch_size=batch_size)


__all__ = ["OnnxNet", "predict_onnx"]

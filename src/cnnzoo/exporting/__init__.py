"""Exporting a network to ONNX or a ``torch.export`` program (``cnnzoo export``), and running an ONNX file.

``export(model_or_run, format="onnx"|"pt2", ...) -> ExportResult`` writes the file and verifies it against PyTorch;
``predict_onnx(path, images)`` runs an exported ONNX file with onnxruntime and its embedded preprocessing;
``read_metadata(path)`` reads the metadata either format carries. ONNX needs ``pip install 'cnnzoo[export]'``.
"""

from .exporter import EXPORTERS, FORMATS, RTOL, ExportResult, VerificationError, export
from .metadata import EXTRA, read_metadata
from .onnx_inference import OnnxNet, predict_onnx

__all__ = ["EXPORTERS", "EXTRA", "FORMATS", "RTOL", "ExportResult", "OnnxNet", "VerificationError", "export",
           "predict_onnx", "read_metadata"]

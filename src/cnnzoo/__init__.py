"""cnnzoo: the classic CNN architectures (CS231n lecture 9), paper-exact, analysable and trainable.

Public API::

    create_model(name, *, num_classes=None, in_channels=3, weights=None, **overrides) -> nn.Module
    list_models(pattern="*", *, family=None) -> list[str]
    model_info(name) -> ModelInfo
    analyze(model_or_name, input_size=None, *, batch_size=1, dtype=torch.float32, optimizer="sgd") -> Analysis
    export(model_or_run, *, format="onnx", weights=None, out=None, batch="dynamic", ...) -> ExportResult
    train(model_or_name, *, data="digits", recipe=None, epochs=None, out=None, device="auto", ...) -> RunResult
    report(run_dirs=(), models="*", model=None, out="report.html") -> Path   (one offline HTML page)
"""

from . import models  # noqa: F401  (registers every family)
from .analysis import Analysis, Report, analyze
from .exporting import export
from .html_report import report
from .registry import ModelInfo, PaperResult, create_model, list_families, list_models, model_info
from .training import train
from .version import __version__
from .weights import WeightsError, load_weights

__all__ = [
    "Analysis",
    "ModelInfo",
    "PaperResult",
    "Report",
    "WeightsError",
    "__version__",
    "analyze",
    "create_model",
    "export",
    "list_families",
    "list_models",
    "load_weights",
    "model_info",
    "report",
    "train",
]

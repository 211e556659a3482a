"""The analyzer: CS231n's layer tables (output volume, memory, params, MACs, receptive field), exact, for any model.

    analysis = cnnzoo.analyze("vgg16")          # or any nn.Module, at any input size
    print(analysis.to_lecture())               # CONV3-64: [224x224x64]  memory: 224*224*64=3.2M  params: ...
    analysis.totals.macs, analysis.to_dict(), analysis.to_csv(), analysis.to_markdown()

:mod:`.analyzer` runs it (two passes over a meta copy, :mod:`.meta`) under the dispatch-level
:mod:`.interceptor`, which fills :mod:`.rows`; :mod:`.counts` holds the per-op formulas, :mod:`.receptive_field`
the receptive-field rules, :mod:`.result` what comes back and its formats.
"""

from .analyzer import analyze
from .meta import AnalysisError, meta_model
from .receptive_field import ReceptiveField
from .result import Analysis, LayerStat, LectureRow, Totals

Report = Analysis  # the name of 0.1; cnnzoo.Report stays importable

__all__ = ["Analysis", "AnalysisError", "LayerStat", "LectureRow", "ReceptiveField", "Report", "Totals", "analyze",
           "meta_model"]

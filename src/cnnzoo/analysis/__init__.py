"""The analyzer: CS231n's layer tables (output volume, memory, params, MACs, receptive field), exact, for any model.

    report = cnnzoo.analyze("vgg16")            # or any nn.Module, at any input size
    print(report.to_lecture())                 # CONV3-64: [224x224x64]  memory: 224*224*64=3.2M  params: ...
    report.totals.macs, report.to_dict(), report.to_csv(), report.to_markdown()

See :mod:`.analyzer` for how it runs (meta device, dispatch-level interception), :mod:`.counts` for the per-op
formulas and :mod:`.receptive_field` for the receptive-field rules.
"""

from .analyzer import analyze
from .lecture import LectureRow
from .meta_copy import AnalysisError
from .receptive_field import ReceptiveField
from .report import Report
from .stats import LayerStat, Totals

__all__ = ["AnalysisError", "LayerStat", "LectureRow", "ReceptiveField", "Report", "Totals", "analyze"]

"""``cnnzoo export MODEL_OR_RUN --format onnx|pt2 ...``, and the ``--onnx`` path of ``cnnzoo predict``."""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from ..evaluation.output import print_predictions
from .exporter import EXPORTERS, FORMATS, RTOL, VerificationError, export
from .onnx_inference import predict_onnx


_EPILOG = """\
examples:
  cnnzoo export runs/resnet20-20260101-120000            # its best weights -> runs/.../resnet20.onnx
  cnnzoo export resnet50_tv --weights resnet50.pth --format pt2 --out r50.pt2
  cnnzoo export alexnet --batch 1 --opset 17 --out alexnet.onnx
  cnnzoo predict --onnx runs/resnet20-20260101-120000/resnet20.onnx photo.png

The file is loaded back (onnxruntime / torch.export.load) and run on random inputs at two batch sizes against
PyTorch; beyond 1e-4 relative difference it is renamed <out>.unverified and the command exits 1.
"""


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        r = export(args.model, format=args.format, weights=args.weights, out=args.out, batch=args.batch,
                   opset=args.opset, image_size=args.image_size, mode=args.mode, exporter=args.exporter)
    except VerificationError as exc:
        print(f"cnnzoo: error: {exc}", file=sys.stderr)
        return 1
    c, h, w = r.metadata["input_size"]
    batch = "dynamic" if args.batch == "dynamic" else args.batch
    how = f"{r.exporter} exporter" if r.format == "onnx" else "torch.export"
    print(f"{r.metadata['model']} ({r.metadata['weights']}) -> {r.path}  [{r.format}, {how}, input Nx{c}x{h}x{w}, "
          f"batch {batch}, {r.seconds:.1f} s]")
    if r.note:
        print(f"  note: {r.note}; used the TorchScript-based exporter")
    print(f"  verified at batch {' and '.join(map(str, sorted(set(r.batch_sizes))))}: max abs diff "
          f"{r.max_abs_diff:.3g} ({r.max_rel_diff:.2e} relative, limit {RTOL:g}), top-1 agreement "
          f"{100 * r.top1_agreement:.1f}%")
    print(f"  metadata: {len(r.metadata['classes'])} classes, mean {r.metadata['mean']}, std {r.metadata['std']}, "
          f"eval resize {r.metadata['eval_resize']}")
    return 0


def predict_onnx_command(args: argparse.Namespace) -> int:
    """``cnnzoo predict --onnx FILE IMAGE...`` (``cli`` dispatches ``predict`` here when ``--onnx`` is given)."""
    if args.weights or args.model or args.tta != "none":
        raise UserError("--onnx runs the exported file alone: drop --weights, --model and --tta")
    results = predict_onnx(args.onnx, args.images, top_k=args.top_k, batch_size=args.batch_size)
    return print_predictions(results, args.json, {"onnx": args.onnx})


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a network to ONNX or torch.export (pt2), verified",
        description="Export a registered network (random init, or --weights), a checkpoint or a run directory (its "
        "best weights, classes and preprocessing) to ONNX or a torch.export program, in eval mode, with the "
        "classes, input size, mean/std, model name, paper and cnnzoo version embedded; then load the file, run it "
        "and compare it with PyTorch. ONNX needs `pip install 'cnnzoo[export]'`.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_OR_RUN", help="a registered name, a run directory or a checkpoint")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or pt2 (torch.export.save)")
    p.add_argument("--weights", metavar="CKPT", help="weights for MODEL: a run directory, .safetensors or state dict")
    p.add_argument("--out", metavar="FILE", help="output file (default: <run>/<model>.<format>, or ./<model>.<format>)")
    p.add_argument("--batch", default="dynamic", help="dynamic (default) or a fixed batch size N")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 18+)")
    p.add_argument("--image-size", type=int, help="input side (default: the run's, or the paper's)")
    p.add_argument("--mode", choices=("eval", "train"), default="eval",
                   help="eval (default); train is refused: training-only outputs and random layers")
    p.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="auto (default: dynamo, TorchScript-based only if dynamo fails), dynamo or torchscript")
    p.set_defaults(func=_cmd_export)

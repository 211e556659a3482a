"""What the evaluation commands print and write: a line per image, and the results as JSON (``--json FILE``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..files import write_json


def write_json_output(path: str, data: dict[str, Any]) -> None:
    """``data`` as JSON on stdout (``-``) or into ``path``, written atomically."""
    if path == "-":
        print(json.dumps(data, indent=2))
    else:
        write_json(Path(path), data)


def print_predictions(results: list[dict[str, Any]], json_path: str | None, source: dict[str, Any]) -> int:
    """One line per image (errors on stderr) and, with ``--json``, the JSON; 1 if an image could not be read."""
    failed = 0
    for r in results:
        if "error" in r:
            failed += 1
            print(f"cnnzoo: error: {r['image']}: {r['error']}", file=sys.stderr)
        elif json_path != "-":
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"]))
    if json_path:
        write_json_output(json_path, {**source, "predictions": results})
    return 1 if failed else 0

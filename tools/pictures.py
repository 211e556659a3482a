"""``make pictures``: refresh the README's screenshots (docs/*.png) of ``cnnzoo report`` in headless Chromium.

Trains ResNet-20 on the bundled digits (16 px, recipe ``quick``, a few epochs) into runs/pictures-resnet20, writes
the zoo page and the run's page, and screenshots the top of each: docs/report_zoo.png (ILSVRC winners, error vs
MACs) and docs/report_run.png (the run's curves, config and throughput).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import cnnzoo  # noqa: E402
from cnnzoo.html_report import write_run_report  # noqa: E402


def shoot(page: Path, png: Path, width: int, height: int) -> None:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)  # fmt: skip
    if browser is None:
        sys.exit("make pictures: no Chromium (apt-get install chromium)")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    print(f"{png.relative_to(ROOT)}: {png.stat().st_size:,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "pictures-resnet20",
                        help="an existing run folder to picture instead of training one")  # fmt: skip
    args = parser.parse_args()
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    if not (args.run / "metrics.jsonl").exists():
        cnnzoo.train("resnet20", data="digits", recipe="quick", epochs=args.epochs, image_size=16, out=args.run,
                     checkpoints=False)  # fmt: skip
    zoo = cnnzoo.report(out=args.run / "zoo.html")
    shoot(zoo, docs / "report_zoo.png", 1300, 2450)
    shoot(write_run_report(args.run), docs / "report_run.png", 1300, 820)


if __name__ == "__main__":
    main()

"""The first lines of a run: what it trains on, what it trains, with which recipe, schedule and augmentation.

``header_lines(...)`` -> e.g.::

    data: /photos (train/ + val/), 10 classes, 8,000 training / 2,000 validation images, held in memory (decoded once)
    model: resnet20, 272,474 parameters
    recipe: resnet_cifar (He et al. 2016 §4.2 (batch 128, ...))
    schedule: lr 0.1, x0.1 at epochs 4 and 6 of 8 (He et al.'s 32k/48k of 64k iterations, scaled x0.0077)
    augmentation at 32 px: pad 4 (zeros) + random 32x32 crop, flip on
    plan: 8 epochs x 62 steps = 496 steps, batch 128
"""

from __future__ import annotations

from ..data import Data, Geometry
from .config import QUICK_DIGITS_SIZE, RunConfig

HELD = {"resident": "held in memory (decoded once)", "cache": "held in memory (read from the disk cache)",
        "streamed": "streamed from the files (decoded every epoch)"}


def header_lines(config: RunConfig, data: Data, *, params: int, geo: Geometry, schedule_line: str,
                 steps_per_epoch: int, total_steps: int, num_epochs: int, extra: list[str] = ()) -> list[str]:
    """``extra``: lines after the model's (fine-tuning: what was loaded, what is frozen)."""
    recipe = config.recipe
    layout = f" ({data.layout})" if data.layout else ""
    held = HELD.get(data.held, data.held) if data.layout else "resident on the device"
    options = "".join(f", {k}={v}" for k, v in config.model_kwargs.items())
    default = ""
    if data.spec == "digits" and recipe.name == "quick" and config.image_size == QUICK_DIGITS_SIZE:
        default = f" (the default on digits without --recipe or a length: the quick recipe at {QUICK_DIGITS_SIZE} px)"
    return [
        f"data: {data.spec}{layout}, {data.num_classes} classes, {len(data.train):,} training / "
        f"{len(data.val):,} validation images, {held}",
        f"model: {config.model}, {params:,} parameters{options}",
        *extra,
        f"recipe: {recipe.name}{default} ({recipe.source})",
        schedule_line,
        augmentation_line(geo),
        f"plan: {num_epochs} epochs x {steps_per_epoch:,} steps = {total_steps:,} steps, batch {recipe.batch_size}",
    ]


def augmentation_line(geo: Geometry) -> str:
    """The augmentation actually applied at this input size (pixel counts already scaled to it)."""
    s = geo.size
    match geo.policy:
        case "pad_crop":
            what = f"pad {geo.pad} ({geo.pad_mode}) + random {s}x{s} crop" if geo.pad else f"no crop ({s}x{s} view)"
        case "random_crop":
            what = f"short side {geo.resize}, random {s}x{s} crop"
        case "scale_jitter":
            lo, hi = geo.short_side_range
            what = f"short side jittered in [{lo}, {hi}], random {s}x{s} crop"
        case "random_resized_crop":
            a, b = geo.area_range
            what = f"random-resized crop ({a:.0%}-{b:.0%} of the area) to {s}x{s}"
        case _:
            what = f"none (centre {s}x{s} view)"
    light = f", PCA lighting {geo.pca_lighting:g}" if geo.pca_lighting else ""
    return f"augmentation at {s} px: {what}, flip {'on' if geo.flip else 'off'}{light}"


def eta(seconds_done: float, epochs_done: int, num_epochs: int) -> str:
    """``, ETA 1m23s`` from the mean epoch time so far."""
    left = (num_epochs - epochs_done) * seconds_done / max(1, epochs_done)
    if epochs_done >= num_epochs:
        return ""
    minutes, secs = divmod(round(left), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f", ETA {text}"


__all__ = ["augmentation_line", "eta", "header_lines"]

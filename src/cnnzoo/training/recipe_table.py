"""The papers' training recipes: one frozen ``Recipe`` row each, citing where its numbers come from.

``get_recipe(name)``, ``list_recipes()``; ``resolve_recipe(name, overrides)`` applies ``--set`` overrides.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import UnknownNameError
from .recipes import Recipe, parse_overrides

_IMAGENET = dict(crop_px=224, resize_px=256)  # ImageNet models: short side 256, 224 crops, at eval the centre crop

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "alexnet",
            "Krizhevsky et al. 2012 §5 (SGD batch 128, momentum 0.9, wd 5e-4, lr 0.01 divided by 10 when the val "
            "error stopped improving, 3 times, ~90 epochs) and §4.1 (random 224 crops of 256x256 images + flips, PCA "
            "lighting std 0.1). Plateau patience 5 epochs is ours (the paper did it by hand).",
            epochs=90, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau", plateau_max_reductions=3,
            augment="random_crop", crop_px=224, resize_px=256, pca_lighting=0.1,
        ),
        Recipe(
            "zfnet",
            "Zeiler & Fergus 2014 §3 (batch 128, lr 1e-2 annealed by hand when the val error plateaus, momentum 0.9, "
            "70 epochs; 224 crops of the 256 image + flips). Weight decay is not stated there: AlexNet's 5e-4.",
            epochs=70, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau",
            augment="random_crop", **_IMAGENET,
        ),
        Recipe(
            "vgg",
            "Simonyan & Zisserman 2015 §3.1 (batch 256, momentum 0.9, wd 5e-4, lr 1e-2 divided by 10 three times "
            "when val accuracy stopped improving, 370k iterations = 74 epochs; 224 crops of images rescaled to S "
            "jittered in [256, 512], flips, RGB colour shift as AlexNet).",
            iterations=370_000, batch_size=256, lr=0.01, weight_decay=5e-4, schedule="plateau",
            plateau_max_reductions=3, augment="scale_jitter", short_side_range_px=(256, 512), pca_lighting=0.1,
            **_IMAGENET,
        ),
        Recipe(
            "googlenet",
            "Szegedy et al. 2015 §6 (momentum 0.9, lr decreased by 4% every 8 epochs, crops of 8-100% of the area "
            "with aspect 3/4-4/3; aux losses x0.3, §5) with the BVLC Caffe solver's lr 0.01, wd 2e-4, batch 32 and "
            "the Caffe replication's 60 epochs. Polyak averaging and photometric distortions are not applied.",
            epochs=60, batch_size=32, lr=0.01, weight_decay=2e-4, schedule="step", step_epochs=8, gamma=0.96,
            aux_loss_weight=0.3, augment="random_resized_crop", **_IMAGENET,
        ),
        Recipe(
            "resnet_imagenet",
            "He et al. 2016 §3.4 (batch 256, lr 0.1 divided by 10 when the error plateaus, 60e4 iterations, wd 1e-4, "
            "momentum 0.9, no dropout; short side jittered in [256, 480], 224 crops, flips, standard colour "
            "augmentation). The lecture slide's 'weight decay 1e-5' is a typo for the paper's 1e-4.",
            iterations=600_000, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="plateau",
            augment="scale_jitter", short_side_range_px=(256, 480), pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "resnet_cifar",
            "He et al. 2016 §4.2 (batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, wd 1e-4, "
            "momentum 0.9; 4-pixel zero padding, random 32x32 crops, flips). ResNet-110's warm-up (lr 0.01 for "
            "~400 iterations): --set warmup_iterations=400 warmup=constant warmup_start_lr=0.01.",
            iterations=64_000, batch_size=128, lr=0.1, weight_decay=1e-4, milestones_iterations=(32_000, 48_000),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "preact_cifar",
            "He et al. 2016b (Identity Mappings) §5: as ResNet CIFAR (batch 128, lr 0.1 /10 at 32k and 48k, 64k "
            "iterations, wd 1e-4, momentum 0.9, pad-4 crops + flips).",
            iterations=64_000, batch_size=128, lr=0.1, weight_decay=1e-4, milestones_iterations=(32_000, 48_000),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "wrn_cifar",
            "Zagoruyko & Komodakis 2016 §3 and scripts/train_cifar.sh (SGD Nesterov, momentum 0.9, dampening 0, wd "
            "5e-4, batch 128, lr 0.1 x0.2 at epochs 60/120/160 of 200; reflect-pad 4, random crops, flips).",
            epochs=200, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4, gamma=0.2,
            milestones_epochs=(60, 120, 160), augment="pad_crop", crop_px=32, pad_px=4, pad_mode="reflect",
        ),
        Recipe(
            "resnext_imagenet",
            "Xie et al. 2017 §4 and the official opts.lua (batch 256, lr 0.1 x0.1 every 30 epochs, 100 epochs, wd "
            "1e-4, momentum 0.9; fb.resnet.torch augmentation: scale/aspect crops, flips, PCA lighting 0.1).",
            epochs=100, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="step", step_epochs=30,
            augment="random_resized_crop", pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "resnext_cifar",
            "Xie et al. 2017 §5.2 and the official README (batch 128, 300 epochs, lr 0.1 x0.1 at 50% and 75% of "
            "training, wd 5e-4, momentum 0.9; pad-4 crops + flips).",
            epochs=300, batch_size=128, lr=0.1, weight_decay=5e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "stochastic_depth_cifar",
            "Huang et al. 2016 §4 and main.lua (500 epochs, batch 128, lr 0.1 -> 0.01 at 50% -> 0.001 at 75%, SGD "
            "Nesterov momentum 0.9, dampening 0, wd 1e-4; pad-4 crops + flips).",
            epochs=500, batch_size=128, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "fractalnet",
            "Larsson et al. 2017 §4 (SGD momentum 0.9, batch 100, lr 0.02, 400 epochs, lr divided by 10 each time "
            "the remaining epochs halve: 200/300/350/375; C10+ = pad-4 crops + flips). No weight decay is stated. "
            "Drop-path is the model's, active in train mode.",
            epochs=400, batch_size=100, lr=0.02, weight_decay=0.0, milestones_epochs=(200, 300, 350, 375),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "densenet_cifar",
            "Huang et al. 2017 §4.2 (SGD Nesterov momentum 0.9 without dampening, batch 64, 300 epochs, lr 0.1 "
            "divided by 10 at 50% and 75% of the epochs, wd 1e-4; C10+ = pad-4 crops + flips).",
            epochs=300, batch_size=64, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "densenet_imagenet",
            "Huang et al. 2017 §4.2 (batch 256, 90 epochs, lr 0.1 divided by 10 at epochs 30 and 60, wd 1e-4, "
            "Nesterov momentum 0.9; fb.resnet.torch augmentation: scale/aspect crops, flips, PCA lighting 0.1).",
            epochs=90, batch_size=256, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_epochs=(30, 60),
            augment="random_resized_crop", pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "squeezenet",
            "Iandola et al. 2016, official solver.prototxt / train_val.prototxt (batch 512 = 32 x iter_size 16, "
            "base_lr 0.04, 'poly' power 1, 170k iterations, momentum 0.9, wd 2e-4; 227 crops of 256 images + flips).",
            iterations=170_000, batch_size=512, lr=0.04, weight_decay=2e-4, schedule="poly", power=1.0,
            augment="random_crop", crop_px=227, resize_px=256,
        ),
        Recipe(
            "nin",
            "Lin et al. 2014 §4.1 (minibatch 128, Krizhevsky's procedure: lr divided by 10 when val accuracy "
            "plateaus; CIFAR-10 with translation + flipping). The paper gives no lr, wd or length: AlexNet's lr "
            "1e-2 and wd 5e-4, and 120 epochs, are ours.",
            epochs=120, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau", plateau_max_reductions=3,
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "finetune",
            "cnnzoo's fine-tuning recipe (not from a paper), the default with --weights: SGD momentum 0.9, lr 0.01 "
            "(the classifier x10: head_lr_mult), cosine decay, wd 1e-4, batch 64, 10 epochs; random-resized crops "
            "of 25-100% of the area (224 crops of 256 images, scaled to the input size) and flips.",
            epochs=10, batch_size=64, lr=0.01, weight_decay=1e-4, schedule="cosine", head_lr_mult=10.0,
            augment="random_resized_crop", area_range=(0.25, 1.0), **_IMAGENET,
        ),
        Recipe(
            "quick",
            "cnnzoo's short recipe for small data sets (not from a paper): SGD Nesterov momentum 0.9, lr 0.1 with a "
            "1-epoch linear warm-up and cosine decay, wd 5e-4, label smoothing 0.1, batch 64, 12 epochs; random "
            "translations of 1/8 of the side (pad-4 crops at 32 px), no flips (digits and text are not symmetric).",
            epochs=12, batch_size=64, lr=0.1, nesterov=True, weight_decay=5e-4, label_smoothing=0.1,
            schedule="cosine", warmup_epochs=1.0, augment="pad_crop", crop_px=32, pad_px=4, flip=False,
        ),
    )
}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; recipes: {', '.join(list_recipes())}"
        raise UnknownNameError(f"unknown recipe {name!r}{hint}") from None


def resolve_recipe(recipe: str | Recipe, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Recipe:
    """A named recipe with ``--set`` overrides applied (and validated as a whole)."""
    base = get_recipe(recipe)
    changes = parse_overrides(overrides)
    return base.replace(**changes) if changes else base


__all__ = ["RECIPES", "get_recipe", "list_recipes", "resolve_recipe"]

"""Image views on every path (resident batches, streamed files, GPU-decoded files) and the GPU JPEG decoding of
streamed folders (issue 20), checked on the CPU: the GPU path's logic runs there with torchvision's CPU decoder."""

from __future__ import annotations

import torch

from cnnzoo.data.augment import Geometry, augment_batch, resample_batch, rng
from cnnzoo.data.folder import augment_image


def _stripes(height: int, width: int) -> torch.Tensor:
    """A high-frequency uint8 image (1-pixel stripes and noise): a shrink without antialiasing aliases it."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 64, (3, height, width), generator=gen, dtype=torch.uint8)
    stripes = (torch.arange(width) % 2 * 180).to(torch.uint8).expand(3, height, width)
    return stripes + noise


def test_resident_and_streamed_augmentation_cut_the_same_view():
    """Loader: the resident (GPU) path resampled crop boxes with ``grid_sample``, without antialiasing, while the
    streamed path resizes with torchvision's antialiased ``resized_crop``: a shrinking box gave two different images
    of one photo. Here the box is the whole 96x96 image (area 100%), shrunk 3x to 32."""
    img = _stripes(96, 96)
    whole = Geometry(policy="random_resized_crop", size=32, pad=0, pad_mode="zeros", resize=37,
                     short_side_range=(32, 32), area_range=(1.0, 1.0), aspect_range=(1.0, 1.0), flip=False,
                     pca_lighting=0.0)
    resident = augment_batch(img[None], whole, rng(0))[0]
    streamed = augment_image(img, whole, rng(0)).float()
    assert float((resident - streamed).abs().max()) <= 1.0


def test_resident_boxes_match_the_streamed_crop_growing_shrinking_and_mirrored():
    from torchvision.transforms.v2 import functional as TF

    img = _stripes(120, 90)
    for box in ((10, 5, 96, 80), (20, 30, 24, 20), (0, 0, 120, 90)):
        for flip in (False, True):
            streamed = TF.resized_crop(img, *box, [32, 32], antialias=True)
            streamed = (TF.horizontal_flip(streamed) if flip else streamed).float()
            resident = resample_batch(img[None], torch.tensor([box], dtype=torch.float64), torch.tensor([flip]), 32)
            assert float((resident[0] - streamed).abs().max()) <= 1.0, (box, flip)

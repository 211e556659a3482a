"""Image views on every path (resident batches, streamed files, GPU-decoded files) and the GPU JPEG decoding of
streamed folders (issue 20), checked on the CPU: the GPU path's logic runs there with torchvision's CPU decoder."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.data import load_data, make_loader
from cnnzoo.data.augment import Geometry, augment_batch, augment_image, resample_batch, rng
from cnnzoo.data.gpu_decode import orient
from cnnzoo.errors import UserError
from cnnzoo.training import RECIPES, train


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


# --- GPU JPEG decoding of streamed folders ---------------------------------------------------------------------------

def _folder(root: Path) -> Path:
    """A train/val folder of small images: RGB and grey JPEGs, one with EXIF orientation 6 (turned a quarter), a
    CMYK JPEG and a PNG (PIL's), and a truncated JPEG (unreadable)."""
    gen = np.random.RandomState(0)
    for split, count in (("train", 4), ("val", 2)):
        for c in ("a", "b"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = gen.randint(0, 256, (36 + 4 * i, 50 - 2 * i, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=95)
    Image.fromarray(gen.randint(0, 256, (40, 60), dtype=np.uint8)).save(root / "train/a/grey.jpg")
    turned = Image.fromarray(gen.randint(0, 256, (30, 52, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    turned.save(root / "train/b/turned.jpg", exif=exif, quality=95)
    Image.fromarray(gen.randint(0, 256, (44, 44, 3), dtype=np.uint8)).convert("CMYK").save(root / "train/a/cmyk.jpg")
    Image.fromarray(gen.randint(0, 256, (38, 46, 3), dtype=np.uint8)).save(root / "train/b/p.png")
    whole = (root / "train/a/0.jpg").read_bytes()
    (root / "train/b/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return root


def _batches(data, geo, decode: str, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = make_loader(data, split, geo=geo, batch_size=4, device=torch.device("cpu"), seed=3, workers=0,
                         decode=decode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncated file's "skipped" warning
        batches = [(x, y) for x, y in loader.epoch(1)]
    return batches, loader.skipped


@pytest.mark.parametrize("recipe, split", [("alexnet", "train"), ("googlenet", "train"), ("resnet_cifar", "train"),
                                           ("alexnet", "val")])
def test_gpu_decoding_gives_the_cpu_paths_views(tmp_path, recipe, split):
    """The nvJPEG path (run here with torchvision's CPU decoder: the logic is the same) gives every sample the
    CPU path's view: the same crop box, flip and antialiased resize, EXIF orientation applied, PIL for what nvJPEG
    does not take, the same files skipped."""
    data = load_data(str(_folder(tmp_path)), image_size=24)
    geo = RECIPES[recipe].geometry(24) if split == "train" else RECIPES[recipe].eval_geometry(24)
    cpu, cpu_skipped = _batches(data, geo, "cpu", split)
    gpu, gpu_skipped = _batches(data, geo, "gpu", split)
    assert cpu_skipped == gpu_skipped == ([str(tmp_path / "train/b/truncated.jpg")] if split == "train" else [])
    assert len(cpu) == len(gpu)
    for (a, ya), (b, yb) in zip(cpu, gpu):
        assert torch.equal(ya, yb) and a.shape == b.shape
        assert float((a - b).abs().mean()) < 0.05 and float((a - b).abs().max()) < 0.5  # normalised: 1 level ~0.017


def test_orientation_is_pils_exif_transpose():
    img = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4)
    pil = Image.fromarray(img[0].numpy())
    transposes = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                  5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}
    for orientation, transpose in transposes.items():
        assert np.array_equal(orient(img, orientation)[0].numpy(), np.asarray(pil.transpose(transpose)))
    assert torch.equal(orient(img, 1), img)


def test_gpu_decoding_without_cuda_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(UserError, match="--decode gpu needs a CUDA device"):
        train("resnet20", data="synthetic:16", image_size=8, batch_size=8, epochs=1, device="cpu", decode="gpu",
              out=tmp_path / "run", progress=False, log=None)
    assert not (tmp_path / "run").exists()
    code = main(["train", "resnet20", "--data", "synthetic:16", "--image-size", "8", "--device", "cpu", "--decode",
                 "gpu", "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cnnzoo: error: --decode gpu needs a CUDA device") and err.count("\n") == 1

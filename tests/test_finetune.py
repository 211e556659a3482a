"""Fine-tuning from saved weights (torchvision layout, another class count, a frozen backbone), the akamaster CIFAR
ResNet layout (zero_pad="split"), and model options from the command line (--model-arg)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.data.sources import synthetic
from cnnzoo.errors import UserError
from cnnzoo.training import train
from cnnzoo.training.config import configure
from cnnzoo.training.finetune import load_pretrained
from cnnzoo.training.config import parse_model_args

QUIET = dict(progress=False, device="cpu", checkpoints=False)


@pytest.fixture(scope="module")
def tv_resnet18(tmp_path_factory):
    """A torchvision ResNet-18's randomly initialised state dict (1000 classes), saved as a .pth file."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("tv") / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_finetune_from_a_torchvision_file_with_another_class_count(tv_resnet18, tmp_path):
    lines = []
    before = torch.load(tv_resnet18, weights_only=True)
    result = train("resnet18_tv", weights=tv_resnet18, freeze="backbone", data=synthetic(8, image_size=64, num_classes=10), image_size=64,
                   batch_size=4, epochs=1, out=tmp_path / "r", log=lines.append, overrides=["augment=none"], **QUIET)
    weights = next(line for line in lines if line.startswith("weights:"))
    assert weights.startswith(f"weights: loaded 120 of 122 tensors from {tv_resnet18}; new: head.fc.weight, "
                              "head.fc.bias"), weights
    assert any(line.startswith("frozen: 11,176,512 backbone parameters") for line in lines), lines
    assert any(line.startswith("recipe: finetune (cnnzoo's fine-tuning recipe (not from a paper)") for line in lines)
    state = result.model.state_dict()
    # frozen parameters unchanged after the steps (conv and BN weights); the new head did train
    assert torch.equal(state["stem.conv.weight"], before["conv1.weight"])
    assert torch.equal(state["stages.stage4.1.bn2.weight"], before["layer4.1.bn2.weight"])
    assert state["head.fc.weight"].shape == (10, 512)
    assert all(not p.requires_grad for n, p in result.model.named_parameters() if not n.startswith("head."))
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["weights"] == str(tv_resnet18) and config["freeze"] == "backbone"


def test_head_lr_mult_and_unfrozen_finetune(tv_resnet18, tmp_path):
    net = cnnzoo.create_model("resnet18_tv", num_classes=3)
    report = load_pretrained(net, tv_resnet18, model="resnet18_tv")
    assert len(report.loaded) == 120 and report.new == ("head.fc.weight", "head.fc.bias")
    result = train("resnet18_tv", weights=tv_resnet18, data=synthetic(8, image_size=64, num_classes=10), image_size=64, batch_size=4, epochs=1,
                   out=tmp_path / "r", log=None, overrides=["head_lr_mult=5", "schedule=constant"], **QUIET)
    assert result.history[0]["lr"] == pytest.approx(0.01)
    before = torch.load(tv_resnet18, weights_only=True)
    assert not torch.equal(result.model.state_dict()["stem.conv.weight"], before["conv1.weight"]), "not frozen"


def test_weights_that_do_not_fit_and_freeze_without_weights(tv_resnet18, tmp_path, capsys):
    with pytest.raises(UserError, match="only .* tensors match"):
        load_pretrained(cnnzoo.create_model("resnet20"), tv_resnet18, model="resnet20")
    with pytest.raises(UserError, match="--freeze backbone needs --weights"):
        configure("resnet20", freeze="backbone")
    assert main(["train", "resnet20", "--weights", str(tmp_path / "missing.pth")]) == 2
    assert "no such file" in capsys.readouterr().err


def _akamaster_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s tensors under akamaster/pytorch_resnet_cifar10's names, in its checkpoint wrapper."""
    names = {"stem.conv.": "conv1.", "stem.bn.": "bn1.", "head.fc.": "linear."}
    state = {}
    for key, value in net.state_dict().items():
        for ours, theirs in names.items():
            key = key.replace(ours, theirs) if key.startswith(ours) else key
        key = key.replace("stages.stage", "layer") if key.startswith("stages.") else key
        state[f"module.{key}"] = value.clone()
    return {"state_dict": state, "best_prec1": 91.7}


def _akamaster_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """akamaster's resnet20 forward, written from its resnet.py: option A as F.pad(x[..., ::2, ::2], (0, 0, 0, 0,
    planes // 4, planes // 4))."""
    s = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}

    def bn(x, p):
        return F.batch_norm(x, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"], s[p + ".bias"])

    out = F.relu(bn(F.conv2d(x, s["conv1.weight"], padding=1), "bn1"))
    for layer, planes in ((1, 16), (2, 32), (3, 64)):
        for block in range(3):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            y = F.relu(bn(F.conv2d(out, s[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
            y = bn(F.conv2d(y, s[p + ".conv2.weight"], padding=1), p + ".bn2")
            short = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) if stride == 2 else out
            out = F.relu(y + short)
    return F.linear(F.adaptive_avg_pool2d(out, 1).flatten(1), s["linear.weight"], s["linear.bias"])


def test_akamaster_cifar_resnet_loads_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    source = cnnzoo.create_model("resnet20", zero_pad="split")
    for m in source.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet20-12fca82f.th"
    torch.save(_akamaster_state(source), path)
    x = torch.randn(4, 3, 32, 32)
    want = _akamaster_forward(torch.load(path, weights_only=True), x)
    net = cnnzoo.create_model("resnet20", zero_pad="split")
    report = load_pretrained(net, path, model="resnet20")
    assert report.new == () and report.ignored == ()
    assert torch.allclose(net.eval()(x), want, atol=1e-5)
    appended = cnnzoo.create_model("resnet20")  # cnnzoo's default layout would silently give other outputs
    with pytest.raises(UserError, match="zero_pad=split"):
        load_pretrained(appended, path, model="resnet20")
    with torch.no_grad():
        appended.load_state_dict(net.state_dict())
    assert not torch.allclose(appended.eval()(x), want, atol=1e-3), "the test can tell the two layouts apart"


def test_model_args_typed_validated_and_saved(tmp_path, capsys):
    assert parse_model_args("resnet20", ["drop_path_rate=0.2", "drop_path_mode=batch", "zero_pad=split"]) == {
        "drop_path_rate": 0.2, "drop_path_mode": "batch", "zero_pad": "split"}
    assert parse_model_args("fractalnet20", ["dropout=0.1,0.2", "eval_column=none", "drop_path=no"]) == {
        "dropout": (0.1, 0.2), "eval_column": None, "drop_path": False}
    assert parse_model_args("googlenet", ["aux_logits=false"]) == {"aux_logits": False}
    cases = [(["dropot=0.3"], "did you mean dropout"), (["drop_path_rate=high"], "could not convert"),
             (["drop_path_mode=rows"], "expected one of row, batch"), (["spec=x"], "a JSON object of spec fields"),
             (["sepc=x"], "options: dropout, drop_path_rate, drop_path_mode, zero_pad, spec$"),
             (["dropout"], "expects name=value")]
    for args, text in cases:
        with pytest.raises(UserError, match=text):
            parse_model_args("resnet20", args)
    base = ["train", "resnet20", "--data", "synthetic:8", "--image-size", "8", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu"]  # a batch the split holds: no clamping warning before the error
    assert main([*base, "--model-arg", "dropout=0.3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model-arg dropout=0.3: resnet20:" in err
    assert main([*base, "--model-arg", "drop_path_rate=0.1", "--out", str(tmp_path / "r"), "--threads", "1"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model_kwargs"] == {"drop_path_rate": 0.1} and config["threads"] == 1

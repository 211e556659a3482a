import re

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import UnknownNameError, UserError
from cnnzoo.registry import ModelInfo, printed_number, register_model

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def test_names_follow_the_naming_rule():
    bad = [n for n in cnnzoo.list_models() if not NAME.match(n)]
    assert not bad


def test_every_model_has_its_paper_and_a_family():
    for name in cnnzoo.list_models():
        info = cnnzoo.model_info(name)
        assert info.name == name
        assert info.paper and info.family
        assert len(info.input_size) == 3 and info.num_classes > 0 and info.params > 0
        assert (info.paper_params is None) == (info.paper_params_source is None)
        assert (info.paper_macs is None) == (info.paper_macs_source is None)


def test_unknown_name_suggests_close_matches():
    name = cnnzoo.list_models()[0]
    with pytest.raises(UnknownNameError, match=re.escape(name)):
        cnnzoo.create_model(name + "x")
    with pytest.raises(KeyError):  # also a KeyError, as a dict lookup would raise
        cnnzoo.model_info("no_such_model_at_all")


def test_duplicate_registration_raises():
    name = cnnzoo.list_models()[0]
    info = cnnzoo.model_info(name)
    with pytest.raises(ValueError, match="already registered"):
        register_model(nn.Identity, info)


def test_list_models_pattern_and_family():
    everything = cnnzoo.list_models()
    for family in cnnzoo.list_families():
        members = cnnzoo.list_models(family=family)
        assert members and set(members) <= set(everything)
        assert all(cnnzoo.model_info(n).family == family for n in members)
    assert cnnzoo.list_models("no_such_*") == []


class _Tiny(nn.Module):
    def __init__(self, *, num_classes, in_channels):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def _tiny_info(name):
    return ModelInfo(name=name, family="test", paper="none", input_size=(3, 4, 4), num_classes=3, params=12)


def test_weights_round_trip_and_refusals(tmp_path):
    from safetensors.torch import save_file

    from cnnzoo.registry import _REGISTRY

    register_model(_Tiny, _tiny_info("tiny_for_weights_test"))
    try:
        src = cnnzoo.create_model("tiny_for_weights_test")
        state = src.state_dict()
        save_file(state, tmp_path / "w.safetensors")
        torch.save({"model": state, "epoch": 3}, tmp_path / "ckpt.pt")
        torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "ddp.pth")
        for source in ("w.safetensors", "ckpt.pt", "ddp.pth"):
            got = cnnzoo.create_model("tiny_for_weights_test", weights=tmp_path / source)
            assert torch.equal(got.fc.weight, src.fc.weight)
        got = cnnzoo.create_model("tiny_for_weights_test", weights=state)
        assert torch.equal(got.fc.bias, src.fc.bias)

        with pytest.raises(cnnzoo.WeightsError, match="shape mismatch"):
            cnnzoo.create_model("tiny_for_weights_test", num_classes=5, weights=state)
        with pytest.raises(cnnzoo.WeightsError, match="missing"):
            cnnzoo.create_model("tiny_for_weights_test", weights={})
        (tmp_path / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
        with pytest.raises(cnnzoo.WeightsError, match="garbage.pth"):
            cnnzoo.create_model("tiny_for_weights_test", weights=tmp_path / "garbage.pth")
        with pytest.raises(UserError, match="no such weights file"):
            cnnzoo.create_model("tiny_for_weights_test", weights=tmp_path / "absent.pth")
    finally:
        del _REGISTRY["tiny_for_weights_test"]


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    import pickle

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": _Payload()}, f)
    from cnnzoo.weights import read_state_dict

    with pytest.raises(cnnzoo.WeightsError, match="refused"):
        read_state_dict(path)
    assert "pwned" not in capsys.readouterr().out


def test_info_cites_papers_not_the_teams_notes():
    """What `cnnzoo info` prints cites the papers (table, section), never files the package does not ship."""
    for name in cnnzoo.list_models():
        text = "\n".join(cnnzoo.model_info(name).describe_lines())
        for note in ("[R", "[V", "architectures.md", "analyzer.md", "performance.md", "reliability_", "code_style"):
            assert note not in text, (name, note)


def test_unverified_numbers_say_so_and_comparable_counts_are_shown():
    vgg16 = "\n".join(cnnzoo.model_info("vgg16").describe_lines())
    assert "Table 3]  (not verified against the cited table)" in vgg16
    resnet50 = cnnzoo.model_info("resnet50")
    assert resnet50.paper_macs == "3.8e9" and "Table 1" in resnet50.paper_macs_source  # the paper's, not the build's
    assert "(not verified" not in "\n".join(resnet50.describe_lines())
    googlenet = "\n".join(cnnzoo.model_info("googlenet").describe_lines())
    assert "comparable:   6,998,552 (without the two auxiliary heads" in googlenet


# --- the papers' numbers ----------------------------------------------------------------------------------------


def test_printed_numbers_carry_their_precision():
    def read(text):
        number = printed_number(text)
        return number.value, number.tolerance

    assert read("1.7M") == (1.7e6, pytest.approx(0.05e6))
    assert read("0.27M") == (pytest.approx(0.27e6), pytest.approx(5e3))
    assert read("1.0M") == (1e6, pytest.approx(0.05e6))  # the trailing zero counts
    assert read("60M") == (60e6, pytest.approx(0.5e6))
    assert read("3.6e9") == (3.6e9, pytest.approx(0.05e9))
    assert read("0.714G") == (pytest.approx(0.714e9), pytest.approx(0.5e6))
    assert read("61,100,840") == (61_100_840, 0.5)
    for bad in ("1.7 M", "about 60M", "", "1.7m", "6,8M"):
        with pytest.raises(ValueError, match="printed number"):
            printed_number(bad)
    with pytest.raises(ValueError, match="printed number"):
        ModelInfo(name="x", family="test", paper="none", input_size=(3, 4, 4), num_classes=3, params=12,
                  paper_params="60 million")


def _paper_numbers():
    """One case per paper_params / paper_macs in the registry; the id says when the number is unverified."""
    for name in cnnzoo.list_models():
        info = cnnzoo.model_info(name)
        for quantity, printed, verified in (
            ("params", info.paper_params, info.paper_params_verified),
            ("macs", info.paper_macs, info.paper_macs_verified),
        ):
            if printed is not None:
                yield pytest.param(name, quantity, id=f"{name}-{quantity}" + ("" if verified else "-unverified"))


# Where this build misses a paper's printed number: the relative distance allowed, and why. Both stay asserted: a
# build that starts to match fails until its entry goes, and one that drifts further fails too.
KNOWN_MISSES = {
    ("alexnet", "params"): (0.02, "the abstract's '60 million parameters' is a round figure for 60,965,224"),
    ("alexnet_1tower", "params"): (
        0.04,
        "'60 million' is the two-group net's round figure; the lecture's single tower adds 1,413,120",
    ),
    ("resnet34", "macs"): (
        0.02,
        "Table 1's 3.6e9 is the option-A net (no projections: plain34's count, 3.644e9, is within the print); this "
        "build uses option B (a documented deviation), whose projections add 19.3M",
    ),
    ("resnet50", "macs"): (
        0.02,
        "unexplained: Table 1 prints 3.8 for the v1 count 3.858e9 (3.9 rounded), where ResNet-101/152 round to "
        "nearest",
    ),
    ("googlenet", "macs"): (
        0.06,
        "§1 states a budget ('1.5 billion multiply-adds at inference time'), not a count of the network: 1.583e9",
    ),
    ("googlenet", "params"): (
        0.03,
        "unverified ~6.8M, as usually quoted for Table 1; the network Table 1 lays out (no aux heads) has 6,998,552",
    ),
    ("fractalnet20", "params"): (
        0.13,
        "unverified and unexplained: 38.6M is DenseNet Table 2's figure; the authors' widths give 33,714,314 "
        "(cnnzoo.models.fractalnet)",
    ),
    ("resnext29_16x64d", "params"): (
        0.001,
        "unverified: Table 7 prints 68.1M for a count of 68,155,210 (68.2M rounded)",
    ),
}


@pytest.mark.parametrize("name, quantity", _paper_numbers())
def test_paper_number_within_its_printed_precision(name, quantity):
    """Every paper_params / paper_macs of the registry, against this build within the precision the paper prints
    ("1.7M": +- 0.05M): parameters against the exact count (the comparable part where the paper counts less),
    multiply-adds from the analyzer at the paper's input size."""
    info = cnnzoo.model_info(name)
    if quantity == "params":
        printed = info.paper_params
        built = info.comparable_params if info.comparable_params is not None else info.params
    else:
        printed, built = info.paper_macs, cnnzoo.analyze(name, training=False).totals.macs
    number = printed_number(printed)
    miss = abs(built - number.value)
    if (name, quantity) in KNOWN_MISSES:
        bound, why = KNOWN_MISSES[name, quantity]
        assert miss > number.tolerance, f"{name} now matches the printed {printed}: remove it from KNOWN_MISSES"
        assert miss <= bound * number.value, f"{name}: {built:,} is further from {printed} than known ({why})"
    else:
        assert miss <= number.tolerance, f"{name}: {built:,} vs the printed {printed} (+- {number.tolerance:,g})"

import re

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import UnknownNameError, UserError
from cnnzoo.registry import ModelInfo, register_model

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
    assert resnet50.paper_macs == 3.8e9 and "Table 1" in resnet50.paper_macs_source  # the paper's, not the build's
    assert "(not verified" not in "\n".join(resnet50.describe_lines())
    googlenet = "\n".join(cnnzoo.model_info("googlenet").describe_lines())
    assert "comparable:   6,998,552 (without the two auxiliary heads" in googlenet

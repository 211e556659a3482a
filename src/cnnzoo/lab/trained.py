"""The lab's trained experiments: each trains small networks with ``cnnzoo.train`` and judges a claim by their errors.

Two scales. **smoke** (the default) trains on the CPU in about a minute per experiment: scikit-learn's digits at
8x8 for degradation (they separate the networks) and fractal-columns (a FractalNet learns nothing of the harder set
in 15 epochs), else the generated ``cluttered-digits`` at 12x12 (see :mod:`cnnzoo.data.cluttered`), all with cnnzoo's
``quick`` recipe (SGD Nesterov, warm-up + cosine, label smoothing 0.1) for 15 epochs, since the papers' recipes are
64k iterations on 50,000 images; some use lab-sized variants of the paper's networks (:mod:`cnnzoo.lab.variants`). **paper** trains the papers' networks on CIFAR-10 at 32x32 with
each one's own paper recipe at full length: hours on a GPU. Every protocol says which, and every number is the mean
over ``--seeds`` runs (seeds 0..N-1) unless said otherwise. "Error" is 100 - top-1 in %: training error is the
epoch's running error on its augmented mini-batches (what the papers' training curves show), validation error
is on the held-out split (the CIFAR-10 test set at paper scale).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import Geometry, make_loader
from ..registry import model_info
from .analytic import filter_stack_checks
from .experiment import Experiment, Outcome, mean, run_entry
from .runner import PAPER_DATA, Lab, Protocol, RunRecord
from .variants import Variant, densenet_depth, fractalnet_blocks, resnet_depth, wide_resnet
from .verdict import Check, below, mean_std, pct, within

SMOKE_EPOCHS = 15
DIGITS = Protocol("digits", 8, "quick", SMOKE_EPOCHS)
CLUTTERED = Protocol("cluttered-digits", 12, "quick", SMOKE_EPOCHS)
CIFAR = Protocol(PAPER_DATA, 32, None, None)  # each model's own paper recipe at full length
# He et al. 2016 §4.2: ResNet-110 starts at lr 0.01 until training error is below 80% (~400 iterations)
WARMUP_110 = {"warmup_iterations": 400, "warmup": "constant", "warmup_start_lr": 0.01}


@dataclass(frozen=True)
class Net:
    """One network an experiment trains: a registered name or a lab-sized :class:`Variant`, with its group in the
    figures, ``create_model`` options and recipe fields of its own."""

    label: str
    model: str | Variant
    group: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # more keys for lab.json (e.g. depth)

    def describe(self) -> str:
        if isinstance(self.model, Variant):
            return f"{self.label} ({self.model.base} with {self.model.change})"
        options = ", ".join(f"{k}={v}" for k, v in self.model_kwargs.items())
        return self.label if self.label == self.model and not options else f"{self.label} ({self.model}" + (
            f" with {options})" if options else ")")

    def recipe(self) -> str | None:
        base = self.model.base if isinstance(self.model, Variant) else self.model
        return model_info(base).recipe


def _train(lab: Lab, name: str, protocol: Protocol, nets: list[Net], seeds: list[int]
           ) -> tuple[dict[str, list[RunRecord]], list[dict[str, Any]]]:
    """Every net at every seed, in seed-major order (so that a stopped lab has whole comparisons); the records per
    label and the runs' lab.json entries."""
    records: dict[str, list[RunRecord]] = {net.label: [] for net in nets}
    entries = []
    for seed in seeds:
        for net in nets:
            variant = isinstance(net.model, Variant)
            record = lab.train(name, net.label, net.model.base if variant else net.model, protocol, seed=seed,
                               recipe=net.recipe(), overrides=net.overrides,
                               model_kwargs=net.model.model_kwargs(**net.model_kwargs) if variant
                               else net.model_kwargs or None)
            records[net.label].append(record)
            entries.append(run_entry(record, group=net.group, **net.extra))
    return records, entries


def _describe(protocol: Protocol, nets: list[Net], seeds: list[int], more: str = "") -> str:
    names = ", ".join(net.describe() for net in nets)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (numbers are means)"
    return f"{names}; {protocol.describe()}; {seed_text}." + (f" {more}" if more else "")


def _final(records: list[RunRecord], key: str) -> float:
    return mean([getattr(r, key) for r in records])


# --- degradation -----------------------------------------------------------------------------------------------

DEGRADATION_MARGIN = 2.0  # points of final training error: "deeper is worse" only beyond this


def run_degradation(lab: Lab, name: str) -> Outcome:
    depths = (20, 56, 110) if lab.paper else (20, 56)
    nets = [Net(f"{kind}-{d}", f"{prefix}{d}", kind, overrides=WARMUP_110 if d == 110 else {}, extra={"depth": d})
            for kind, prefix in (("plain", "plain"), ("ResNet", "resnet")) for d in depths]
    protocol = lab.protocol(DIGITS, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    err = {label: _final(recs, "final_train_error") for label, recs in records.items()}
    val = {label: _final(recs, "final_val_error") for label, recs in records.items()}
    p20, p56, r20, r56 = err["plain-20"], err["plain-56"], err["ResNet-20"], err["ResNet-56"]
    checks = [
        Check("plain nets degrade", f"plain-56 ends at least {DEGRADATION_MARGIN:g} points above plain-20 in "
              "training error", p56 - p20 >= DEGRADATION_MARGIN,
              f"plain-56 ends at {pct(p56)} training error, plain-20 at {pct(p20)}"),
        Check("shortcuts remove it", f"ResNet-56 ends less than {DEGRADATION_MARGIN:g} points above ResNet-20",
              r56 - r20 < DEGRADATION_MARGIN, f"ResNet-56 at {pct(r56)}, ResNet-20 at {pct(r20)}"),
    ]
    more = ("plain-N is ResNet-N without its identity shortcuts (He et al. §4.2). The 110-layer nets start with "
            "He et al.'s warm-up (lr 0.01 for 400 iterations)." if lab.paper else
            "plain-N is ResNet-N without its identity shortcuts (He et al. §4.2).")
    return Outcome(_describe(protocol, nets, seeds, more), checks,
                   {"final_train_error": err, "final_val_error": val}, entries)


DEGRADATION = Experiment(
    name="degradation",
    title="Degradation: deeper plain networks train worse; shortcuts fix it",
    claim="Stacking more layers on a plain network makes it worse on the training set itself, so the cause is not "
          "overfitting: a 56-layer plain network ends with a higher training error than a 20-layer one. With "
          "identity shortcuts (residual learning) the deeper network is no longer worse.",
    source="He et al. 2016, 'Deep Residual Learning for Image Recognition', Fig. 1 and Fig. 6 (CIFAR-10), §4.2",
    rule=f"Holds if plain-56's final training error is at least {DEGRADATION_MARGIN:g} points above plain-20's, "
         f"and ResNet-56's is less than {DEGRADATION_MARGIN:g} points above ResNet-20's (means over seeds).",
    trained=True,
    run=run_degradation,
)


# --- small-filters ---------------------------------------------------------------------------------------------


class FilterNet(nn.Module):
    """A small classifier whose two stages are either three conv3x3 or one conv7x7 (each conv-BN-ReLU) at
    ``width`` channels: the same receptive field (15 px from the stages, 17 with the stem); nothing else differs.
    stem conv3x3 -> stage -> 2x2 max pool -> stage -> global average pool -> FC."""

    def __init__(self, kernel: int, count: int, *, width: int = 32, num_classes: int = 10, in_channels: int = 3):
        super().__init__()

        def unit(cin: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, width, k, padding=k // 2, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

        layers = unit(in_channels, 3)
        for stage in range(2):
            for _ in range(count):
                layers += unit(width, kernel)
            if stage == 0:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def run_small_filters(lab: Lab, name: str) -> Outcome:
    checks, numbers = filter_stack_checks()
    protocol = lab.protocol(CLUTTERED, Protocol(PAPER_DATA, 32, "resnet_cifar", None))
    width = 64 if lab.paper else 32
    builders = {"3x3-stack": lambda n: FilterNet(3, 3, width=width, num_classes=n),
                "7x7-single": lambda n: FilterNet(7, 1, width=width, num_classes=n)}
    seeds = lab.seeds()
    records: dict[str, list[RunRecord]] = {label: [] for label in builders}
    entries = []
    for seed in seeds:
        for label, build in builders.items():
            record = lab.train(name, label, build, protocol, seed=seed, recipe=protocol.recipe or "resnet_cifar")
            records[label].append(record)
            entries.append(run_entry(record, group=label))
    stack, single = (_final(records[k], "final_val_error") for k in builders)
    stack_params, single_params = (records[k][0].params for k in builders)
    checks.append(Check("the stack generalises better", "the 3x3-stack net ends with a lower validation error "
                        "than the 7x7 net", below(stack, single),
                        f"trained: 3x3 stack {pct(stack)} validation error ({stack_params:,} params) vs 7x7 "
                        f"{pct(single)} ({single_params:,} params)"))
    described = (f"Analytic: three conv3x3 against one conv7x7 at C={numbers['channels']} on "
                 f"{numbers['side']}x{numbers['side']}, no biases, measured by cnnzoo.analyze. Trained: two nets "
                 f"that differ only in that (stem conv3x3, two stages of either 3 x conv3x3-BN-ReLU or 1 x "
                 f"conv7x7-BN-ReLU at {width} channels, max pool between, global average pool, FC); "
                 f"{protocol.describe()}; "
                 + (f"seed {seeds[0]}." if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (means)."))
    return Outcome(described, checks, {**numbers, "final_val_error": {"3x3-stack": stack, "7x7-single": single}},
                   entries)


SMALL_FILTERS = Experiment(
    name="small-filters",
    title="Small filters: three 3x3 convolutions against one 7x7",
    claim="A stack of three 3x3 convolutions (stride 1) has the receptive field of one 7x7 convolution, with "
          "fewer parameters (27C^2 against 49C^2 at C channels), fewer multiply-adds and three non-linearities "
          "instead of one; a deep net of small filters outperforms a shallow one of large filters.",
    source="Simonyan & Zisserman 2015, 'Very Deep Convolutional Networks', §2.3 and §4.1; CS231n lecture 9 (VGGNet)",
    rule="Analytic: holds if the receptive fields are equal (7), the weights are exactly 27C^2 and 49C^2, the "
         "multiply-adds 27C^2HW and 49C^2HW, the ReLUs 3 and 1. Trained: holds if the 3x3-stack net's final "
         "validation error is lower than the 7x7 net's (means over seeds).",
    trained=True,
    run=run_small_filters,
)


# --- ensemble --------------------------------------------------------------------------------------------------

ENSEMBLE_MEMBERS = {"smoke": 4, "paper": 7}  # the lecture's "7 CNN ensemble" at paper scale


@torch.no_grad()
def softmax_outputs(net: nn.Module, lab: Lab, protocol: Protocol, record: RunRecord
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained network's softmax on the validation split, seen as its run's validation saw it."""
    config = json.loads((record.path / "config.json").read_text())
    data = lab.data(protocol.data, protocol.image_size)
    device = next(net.parameters()).device
    loader = make_loader(data, "val", geo=Geometry.eval_view(config["image_size"], config["eval_resize"]),
                         batch_size=256, device=device, seed=0)
    probs, labels = [], []
    net.eval()
    for x, y in loader.epoch(0):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = net(x)
        probs.append(torch.softmax(logits.float(), 1).cpu())
        labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels)


def run_ensemble(lab: Lab, name: str) -> Outcome:
    protocol = lab.protocol(CLUTTERED, CIFAR)
    seeds = lab.seeds(ENSEMBLE_MEMBERS[lab.settings.scale])
    nets = [Net("ResNet-20", "resnet20", "member")]
    records, entries = _train(lab, name, protocol, nets, seeds)
    members = records["ResNet-20"]
    outputs = [softmax_outputs(r.net, lab, protocol, r) for r in members]
    labels = outputs[0][1]
    errors = [100.0 * (p.argmax(1) != labels).double().mean().item() for p, _ in outputs]
    average = torch.stack([p for p, _ in outputs]).mean(0)
    ens = 100.0 * (average.argmax(1) != labels).double().mean().item()
    member_mean, best = mean(errors), min(errors)
    relative = 100 * (ens - member_mean) / member_mean
    checks = [
        Check("beats the average member", "the ensemble's validation error is below the members' mean",
              below(ens, member_mean), f"ensemble of {len(members)} {pct(ens)} vs members {mean_std(errors)}"),
        Check("beats the best member", "the ensemble's error is at most the best member's", ens <= best,
              f"best member {pct(best)}; the ensemble {abs(relative):.0f}% "
              f"{'below' if relative <= 0 else 'above'} the members' mean"),
    ]
    more = (f"{len(members)} members differ only in their seed (initial weights, batch order, augmentation). Each "
            "member's final weights and the ensemble (mean of the members' softmax outputs, Krizhevsky et al. §6) "
            "are evaluated on the validation split.")
    return Outcome(_describe(protocol, nets, seeds, more).replace("(numbers are means)", "(one member each)"),
                   checks, {"members": errors, "member_seeds": seeds, "members_mean": member_mean, "ensemble": ens,
                            "best_member": best}, entries)


ENSEMBLE = Experiment(
    name="ensemble",
    title="Ensembles: averaging several networks beats each of them",
    claim="Averaging the predictions of several networks trained alike lowers the error below that of a single "
          "network: AlexNet's top-5 error went from 18.2% (1 CNN) to 15.4% (7 CNNs).",
    source="Krizhevsky et al. 2012, 'ImageNet Classification with Deep Convolutional Neural Networks', §6 and "
           "Table 2; CS231n lecture 9 (AlexNet, '7 CNN ensemble: 18.2% -> 15.4%')",
    rule="Holds if the ensemble's validation error (mean softmax of the members) is below the members' mean error "
         "and no higher than the best member's.",
    trained=True,
    run=run_ensemble,
)


# --- preact ----------------------------------------------------------------------------------------------------


def run_preact(lab: Lab, name: str) -> Outcome:
    if lab.paper:
        nets = [Net("original-110", "resnet110", "original", overrides=WARMUP_110),
                Net("pre-act-110", "preact_resnet110", "pre-activation", overrides=WARMUP_110)]
    else:
        nets = [Net("original-56", "resnet56", "original"),
                Net("pre-act-56", resnet_depth("preact_resnet110", 9, "pre-act-56"), "pre-activation")]
    protocol = lab.protocol(CLUTTERED, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    (orig_label, orig), (pre_label, pre) = records.items()
    loss_o, loss_p = _final(orig, "final_train_loss"), _final(pre, "final_train_loss")
    err_o, err_p = _final(orig, "final_val_error"), _final(pre, "final_val_error")
    checks = [
        Check("trains better", "the pre-activation net ends with a lower training loss",
              below(loss_p, loss_o), f"training loss {loss_p:.4f} ({pre_label}) vs {loss_o:.4f} ({orig_label})"),
        Check("generalises at least as well", "the pre-activation net's final validation error is at most the "
              "original's", err_p <= err_o, f"validation error {pct(err_p)} vs {pct(err_o)}"),
    ]
    more = ("Both nets have the same depth, widths, option-A shortcuts and parameters; only the order inside the "
            "unit differs (original: conv-BN-ReLU-conv-BN, add, ReLU; pre-activation: BN-ReLU-conv-BN-ReLU-conv, "
            "add).")
    return Outcome(_describe(protocol, nets, seeds, more), checks,
                   {"final_train_loss": {orig_label: loss_o, pre_label: loss_p},
                    "final_val_error": {orig_label: err_o, pre_label: err_p}}, entries)


PREACT = Experiment(
    name="preact",
    title="Pre-activation: identity mappings train better at depth",
    claim="Moving batch normalisation and ReLU before the convolutions of a residual unit, so that nothing follows "
          "the addition and the shortcut path is a pure identity, makes a deep residual network easier to train "
          "(lower training loss) and lowers its test error at the same depth.",
    source="He et al. 2016b, 'Identity Mappings in Deep Residual Networks', §4, Table 3 and Fig. 6 (ResNet-110: "
           "6.61% -> 6.37% on CIFAR-10)",
    rule="Holds if the pre-activation net's final training loss is lower than the original's and its final "
         "validation error is no higher (means over seeds).",
    trained=True,
    run=run_preact,
)


# --- wide-vs-deep ----------------------------------------------------------------------------------------------


def run_wide_vs_deep(lab: Lab, name: str) -> Outcome:
    if lab.paper:
        nets = [Net("WRN-40-4", "wrn40_4", "wide"), Net("ResNet-1001 (pre-act)", "preact_resnet1001", "deep")]
    else:
        nets = [Net("WRN-16-2", wide_resnet("wrn16_8", 16, 2, "WRN-16-2"), "wide"),
                Net("ResNet-56", "resnet56", "deep")]
    protocol = lab.protocol(CLUTTERED, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    (wide_label, wide), (deep_label, deep) = records.items()
    err_w, err_d = _final(wide, "final_val_error"), _final(deep, "final_val_error")
    sec_w, sec_d = _final(wide, "seconds_per_epoch"), _final(deep, "seconds_per_epoch")
    checks = [
        Check("at least as accurate", "the wide net's final validation error is at most the deep net's",
              err_w <= err_d, f"{wide_label} ({wide[0].params:,} params) {pct(err_w)} vs {deep_label} "
              f"({deep[0].params:,} params) {pct(err_d)} validation error"),
        Check("faster", "the wide net trains an epoch in less time", below(sec_w, sec_d),
              f"{sec_w:.2f} vs {sec_d:.2f} s per epoch ({sec_d / sec_w:.1f}x)"),
    ]
    more = ("Times are training seconds per epoch (validation excluded) of runs made one after the other in one "
            "process on the same device.")
    return Outcome(_describe(protocol, nets, seeds, more), checks,
                   {"final_val_error": {wide_label: err_w, deep_label: err_d},
                    "seconds_per_epoch": {wide_label: sec_w, deep_label: sec_d}}, entries)


WIDE_VS_DEEP = Experiment(
    name="wide-vs-deep",
    title="Width against depth: a wide shallow ResNet against a thin deep one",
    claim="At a similar number of parameters, a wide and shallow residual network is at least as accurate as a "
          "thin and very deep one and trains several times faster, because wide layers compute in parallel: "
          "WRN-40-4 (8.9M) beats pre-activation ResNet-1001 (10.2M) and trains 8x faster.",
    source="Zagoruyko & Komodakis 2016, 'Wide Residual Networks', §3 (Table 4; 'computational efficiency', Fig. 4)",
    rule="Holds if the wide net's final validation error is at most the deep net's and its training time per "
         "epoch is lower (means over seeds).",
    trained=True,
    run=run_wide_vs_deep,
)


# --- stochastic-depth ------------------------------------------------------------------------------------------

STOCHASTIC = {"drop_path_rate": 0.5, "drop_path_mode": "batch"}  # Huang et al. §4: linear decay to p_L = 0.5


def run_stochastic_depth(lab: Lab, name: str) -> Outcome:
    if lab.paper:
        nets = [Net("constant depth", "resnet110", "constant", overrides={}),
                Net("stochastic depth", "resnet110_sd", "stochastic")]
        protocol = lab.protocol(CLUTTERED, Protocol(PAPER_DATA, 32, "stochastic_depth_cifar", None))
    else:
        nets = [Net("constant depth", "resnet56", "constant"),
                Net("stochastic depth", "resnet56", "stochastic", model_kwargs=dict(STOCHASTIC))]
        protocol = lab.protocol(CLUTTERED, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    const, sd = records["constant depth"], records["stochastic depth"]
    err_c, err_s = _final(const, "final_val_error"), _final(sd, "final_val_error")
    sec_c, sec_s = _final(const, "seconds_per_epoch"), _final(sd, "seconds_per_epoch")
    checks = [
        Check("shorter training", "an epoch with stochastic depth takes less time", below(sec_s, sec_c),
              f"{sec_s:.2f} vs {sec_c:.2f} s per epoch ({100 * (1 - sec_s / sec_c):.0f}% less)"),
        Check("lower test error", "the stochastic-depth net's final validation error is lower", below(err_s, err_c),
              f"validation error {pct(err_s)} vs {pct(err_c)} (constant depth)"),
    ]
    more = ("Stochastic depth: each mini-batch skips residual block l with probability l/L x 0.5 (linear decay to "
            "p_L = 0.5); a skipped block is not computed; at test time every block runs, scaled by its survival "
            "probability.")
    return Outcome(_describe(protocol, nets, seeds, more), checks,
                   {"final_val_error": {"constant depth": err_c, "stochastic depth": err_s},
                    "seconds_per_epoch": {"constant depth": sec_c, "stochastic depth": sec_s}}, entries)


STOCHASTIC_DEPTH = Experiment(
    name="stochastic-depth",
    title="Stochastic depth: a shorter network in training, the full one at test",
    claim="Dropping whole residual blocks at random during training (the identity shortcut stays) shortens each "
          "training pass and acts as a regulariser: ResNet-110 trains about 25% faster and its CIFAR-10 test error "
          "falls from 6.41% to 5.25%.",
    source="Huang et al. 2016, 'Deep Networks with Stochastic Depth', §3-4, Table 1 and Fig. 3",
    rule="Holds if the stochastic-depth net's training time per epoch is lower and its final validation error is "
         "lower (means over seeds).",
    trained=True,
    run=run_stochastic_depth,
)


# --- fractal-columns -------------------------------------------------------------------------------------------

COLUMN_MARGIN = 1.0  # points: the deepest column alone may be this much worse than the whole net
LEARNED = 0.5  # of the chance error: a net above it has not learned enough for a comparison to mean anything


@torch.no_grad()
def _column_error(net: nn.Module, lab: Lab, protocol: Protocol, record: RunRecord, column: int | None) -> float:
    previous = net.eval_column
    net.eval_column = column
    try:
        probs, labels = softmax_outputs(net, lab, protocol, record)
    finally:
        net.eval_column = previous
    return 100.0 * (probs.argmax(1) != labels).double().mean().item()


def run_fractal_columns(lab: Lab, name: str) -> Outcome:
    if lab.paper:
        nets = [Net("FractalNet-20", "fractalnet20", "fractal")]
    else:
        nets = [Net("FractalNet-3x3", fractalnet_blocks("fractalnet20", (32, 64, 128), "FractalNet-3x3"), "fractal")]
    protocol = lab.protocol(DIGITS, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    runs = records[nets[0].label]
    columns = runs[0].net.num_columns
    full = mean([_column_error(r.net, lab, protocol, r, None) for r in runs])
    each = [mean([_column_error(r.net, lab, protocol, r, c) for r in runs]) for c in range(columns)]
    depths = [runs[0].net.column_depth(c) for c in range(columns)]
    chance = 100.0 * (1 - 1 / lab.data(protocol.data, protocol.image_size).num_classes)
    checks = [
        Check("the whole network learned", f"its validation error is at most {LEARNED:.0%} of chance "
              f"({LEARNED * chance:.0f}%)", full <= LEARNED * chance,
              f"whole network {pct(full)} validation error (chance {chance:.0f}%)"),
        Check("the deepest column stands alone", f"the deepest column alone ends at most {COLUMN_MARGIN:g} point "
              "above the whole network", within(each[-1], full, COLUMN_MARGIN),
              f"deepest column alone ({depths[-1]} convs) {pct(each[-1])} (columns of "
              + "/".join(map(str, depths)) + " convs: " + "/".join(f"{e:.1f}" for e in each) + "%)"),
    ]
    more = ("Trained once, with drop-path (local: each join drops each input with p = 0.15; global: on half of the "
            "mini-batches one column alone) and the per-block dropout; then the final weights are evaluated with "
            "every join averaging all its columns, and with each column alone as a plain chain.")
    return Outcome(_describe(protocol, nets, seeds, more), checks,
                   {"full_error": full, "column_error": each[-1], "column_depth": depths[-1],
                    "column_errors": each, "column_depths": depths, "chance_error": chance}, entries)


FRACTAL_COLUMNS = Experiment(
    name="fractal-columns",
    title="FractalNet: with drop-path, one column stands alone",
    claim="FractalNet needs no residuals; trained with drop-path, which forces each column to work alone, its "
          "deepest column extracted as a plain network performs almost as well as the whole fractal: 4.68% against "
          "4.60% on CIFAR-10 with augmentation (20 layers).",
    source="Larsson et al. 2017, 'FractalNet: Ultra-Deep Neural Networks without Residuals', §3.1, §4 and Table 1 "
           "('deepest column alone' rows)",
    rule=f"Holds if the whole network learned (validation error at most {LEARNED:.0%} of chance) and its deepest "
         f"column alone ends at most {COLUMN_MARGIN:g} point above it in validation error (means over seeds).",
    trained=True,
    run=run_fractal_columns,
)


# --- dense-efficiency ------------------------------------------------------------------------------------------


def run_dense_efficiency(lab: Lab, name: str) -> Outcome:
    if lab.paper:
        nets = [Net("DenseNet-BC-100 (k=12)", "densenet_bc100_k12", "DenseNet-BC"),
                Net("ResNet-56", "resnet56", "ResNet"), Net("ResNet-110", "resnet110", "ResNet", overrides=WARMUP_110)]
    else:
        nets = [Net("DenseNet-BC-28 (k=12)", densenet_depth("densenet_bc100_k12", 28, "DenseNet-BC-28 (k=12)"),
                    "DenseNet-BC"),
                Net("ResNet-20", "resnet20", "ResNet"), Net("ResNet-56", "resnet56", "ResNet")]
    protocol = lab.protocol(CLUTTERED, CIFAR)
    seeds = lab.seeds()
    records, entries = _train(lab, name, protocol, nets, seeds)
    errors = {label: _final(recs, "final_val_error") for label, recs in records.items()}
    dense_label = nets[0].label
    resnet_label = min((net.label for net in nets if net.group == "ResNet"), key=errors.__getitem__)
    dense, resnet = records[dense_label][0], records[resnet_label][0]
    err_d, err_r = errors[dense_label], errors[resnet_label]
    checks = [
        Check("fewer parameters", f"{dense_label} has fewer parameters than the best ResNet ({resnet_label})",
              dense.params < resnet.params,
              f"{dense.params:,} vs {resnet.params:,} parameters ({resnet.params / dense.params:.1f}x)"),
        Check("the same error or lower", f"{dense_label}'s final validation error is at most the best ResNet's",
              err_d <= err_r, f"validation error {pct(err_d)} ({dense_label}) vs {pct(err_r)} ({resnet_label})"),
    ]
    return Outcome(_describe(protocol, nets, seeds), checks,
                   {"final_val_error": errors, "params": {label: recs[0].params for label, recs in records.items()}},
                   entries)


DENSE_EFFICIENCY = Experiment(
    name="dense-efficiency",
    title="DenseNet: ResNet's error with fewer parameters",
    claim="Connecting every layer of a block to all later ones (feature reuse) makes DenseNet-BC parameter-"
          "efficient: it reaches the error of a ResNet with several times fewer parameters (DenseNet-BC-100, "
          "0.8M, 4.51% on CIFAR-10+ against pre-activation ResNet-1001, 10.2M, 4.62%).",
    source="Huang et al. 2017, 'Densely Connected Convolutional Networks', §4.3 ('Model compactness'), Table 2 and "
           "Fig. 4",
    rule="Holds if the DenseNet-BC has fewer parameters than the best ResNet of the protocol (the one with the "
         "lowest final validation error) and a final validation error no higher than that ResNet's (means over "
         "seeds).",
    trained=True,
    run=run_dense_efficiency,
)

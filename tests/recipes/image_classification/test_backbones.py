"""Networks: the packaged ImageNet weights, two learning rates, the freeze schedule."""

from __future__ import annotations

import pytest
import torch

from opsline.recipes.image_classification import backbones
from opsline.recipes.image_classification.config import ImageModelConfig
from opsline.recipes.image_classification.module import (
    FreezeSchedule,
    ImageClassifier,
    set_backbone_trainable,
)
from opsline.recipes.image_classification.preprocessing import Preprocessing

PRE = Preprocessing(32, 3, backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)


def test_packaged_mobilenetv2_weights_match_torchvision_exactly() -> None:
    import timm
    import torchvision

    path = backbones.packaged_weights_file("mobilenetv2_100")
    state = torch.load(path, map_location="cpu", weights_only=True)
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state)
    ours = timm.create_model("mobilenetv2_100", pretrained=False)
    ours.load_state_dict(backbones.map_state_dict(dict(state), ours.state_dict()))
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(reference.eval()(x), ours.eval()(x), atol=1e-5)


def test_create_loads_the_backbone_and_leaves_a_new_head() -> None:
    cfg = ImageModelConfig(
        name="mobilenetv2", arch="mobilenetv2_100", pretrained="package", dropout=0.3
    )
    net, arch = backbones.create(cfg, num_classes=5, in_chans=3)
    assert arch == {
        "family": "timm",
        "name": "mobilenetv2_100",
        "num_classes": 5,
        "in_chans": 3,
        "drop_rate": 0.3,
        "head_norm": False,
        "pretrained": "package",
    }
    state = torch.load(backbones.packaged_weights_file("mobilenetv2_100"), weights_only=True)
    assert torch.equal(net.conv_stem.weight, state["features.0.0.weight"])
    assert net.get_classifier().out_features == 5


def test_unknown_packaged_model_says_what_to_do() -> None:
    from opsline.errors import UsageError

    with pytest.raises(UsageError, match="packaged: mobilenetv2_100"):
        backbones.packaged_weights_file("resnet18")


def _module(net, **kw) -> ImageClassifier:
    return ImageClassifier(
        net, PRE, "multiclass", backbone_lr=1e-5, head_lr=1e-3, weight_decay=0.01, **kw
    )


def test_backbone_and_head_learning_rates_are_both_applied() -> None:
    net = backbones.SmallCNN(num_classes=4, channels=(8, 16))
    optimizer = _module(net, scheduler="none").configure_optimizers()
    backbone_group, head_group = optimizer.param_groups
    assert (backbone_group["name"], backbone_group["lr"]) == ("backbone", 1e-5)
    assert (head_group["name"], head_group["lr"]) == ("head", 1e-3)
    head_ids = {id(p) for p in net.head.parameters()}
    assert {id(p) for p in head_group["params"]} == head_ids
    assert {id(p) for p in backbone_group["params"]} == {
        id(p) for p in net.parameters()
    } - head_ids  # disjoint and complete


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics() -> None:
    net = backbones.SmallCNN(num_classes=3, channels=(8, 16))
    module = _module(net, scheduler="none")
    optimizer = module.configure_optimizers()
    net.train()
    set_backbone_trainable(net, False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 3, (8,))
    for _ in range(3):
        optimizer.zero_grad()
        module.training_step((x, y), 0).backward()
        optimizer.step()
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), changed
    set_backbone_trainable(net, True)
    assert all(p.requires_grad for p in net.parameters())
    assert all(m.training for m in net.modules())


def test_freeze_schedule_epochs() -> None:
    assert [FreezeSchedule(2).frozen(e) for e in range(4)] == [True, True, False, False]
    assert not FreezeSchedule(0).frozen(0) and FreezeSchedule(-1).frozen(100)


def test_probe_writes_a_standardising_head_that_reproduces_the_fit() -> None:
    from opsline.recipes.image_classification.probe import features, fit_probe

    cfg = ImageModelConfig(
        name="m", arch="mobilenetv2_100", pretrained="package", dropout=0.0, head_norm=True
    )
    net, _ = backbones.create(cfg, num_classes=3, in_chans=3)
    colours = torch.tensor([[230, 30, 30], [30, 30, 230], [30, 200, 30]], dtype=torch.uint8)
    y = torch.arange(12) % 3
    images = colours[y].view(12, 3, 1, 1).expand(12, 3, 32, 32).clone()
    images[:, :, 8:24, 8:24] = torch.randint(0, 255, (12, 3, 16, 16), dtype=torch.uint8)
    stats = fit_probe(net, PRE, images, y, "multiclass", c=1.0, orientation_invariant=True)
    assert stats["probe_views"] == 8 and stats["probe_train_accuracy"] == 1.0
    bn = net.get_classifier()[0]
    feats = torch.cat([features(net, v) for v in PRE.views_dihedral(PRE.normalize(images))])
    assert not bn.training and torch.allclose(bn.running_mean, feats.mean(0), atol=1e-4)
    with torch.no_grad():
        assert torch.equal(net(PRE.normalize(images)).argmax(1), y)

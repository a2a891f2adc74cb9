"""Offline LPIPS: the fallback without trunk weights, and agreement with the
real ``lpips`` package (the oracle) built without any download.

The oracle is ``lpips.LPIPS(pretrained=True, pnet_rand=True)``: the shipped
linear heads and a *random* trunk, so nothing is fetched. Its trunk weights
are saved in torchvision's key layout and given to our implementation as a
user-supplied trunk; then both must give the same distances. That checks the
whole computation (range mapping, scaling layer, taps, unit normalisation,
linear heads, spatial mean, layer sum) independently of which trunk weights
are used.
"""
from __future__ import annotations

import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore_lib.lpips import LPIPS, NO_TRUNK, LPIPSWeightsError, load_lpips, lpips_score
from restore_lib.checkpoints import CheckpointError
from restore_lib.weights import TORCHVISION_FILES, package_file


def _no_network(*args, **kwargs):
    raise AssertionError("test tried to open a network connection")


@pytest.fixture
def empty_weight_dirs(tmp_path, monkeypatch):
    """No trunk weights anywhere: $RESTORE_WEIGHTS_DIR and the torch hub are empty."""
    (tmp_path / "w").mkdir()
    (tmp_path / "th").mkdir()
    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    return tmp_path


# --------------------------------------------------------------------------- no trunk weights

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_no_trunk_weights_is_reported_not_substituted(empty_weight_dirs, net):
    assert load_lpips(net) == (None, NO_TRUNK)
    assert NO_TRUNK == "n/a (no trunk weights)"
    with pytest.raises(LPIPSWeightsError, match="no ImageNet trunk weights"):
        LPIPS(net)


def test_explicit_missing_trunk_path_is_an_error(empty_weight_dirs):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_lpips("alex", trunk_path=empty_weight_dirs / "nowhere.pth")


def test_lin_weights_are_the_wheel_files():
    for net, chans in (("alex", (64, 192, 384, 256, 256)), ("vgg", (64, 128, 256, 512, 512))):
        path = package_file("lpips", "weights", "v0.1", f"{net}.pth")
        assert path is not None
        sd = torch.load(path, map_location="cpu", weights_only=True)
        assert [tuple(sd[f"lin{i}.model.1.weight"].shape) for i in range(5)] == [(1, c, 1, 1) for c in chans]


# --------------------------------------------------------------------------- oracle: the lpips package

def _build_oracle(net: str, hub: Path):
    """lpips.LPIPS with shipped heads and a random trunk, with the network cut
    and an empty torch hub, proving it neither downloads nor reads a cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(hub))
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        # The trunk's unused ImageNet classifier (nn.Linear, up to 120 M weights) need not be initialised:
        # AlexNet inits it through Linear.reset_parameters, VGG16 through nn.init.normal_ (used for nothing
        # else while the oracle is built).
        mp.setattr(torch.nn.Linear, "reset_parameters", lambda self: None)
        mp.setattr(torch.nn.init, "normal_", lambda t, *args, **kwargs: t)
        import lpips  # the oracle only; restore_lib never imports it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
            torch.manual_seed(0)
            ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    assert not any(hub.rglob("*")), "the oracle wrote to the torch hub cache"
    # the linear heads really are the shipped ones
    shipped = torch.load(package_file("lpips", "weights", "v0.1", f"{net}.pth"), map_location="cpu",
                         weights_only=True)
    for k, v in shipped.items():
        assert torch.equal(ref.state_dict()[k], v), k
    return ref.eval()


def _save_trunk_torchvision_layout(ref, path: Path, with_classifier: bool = True) -> None:
    """``net.sliceK.<i>.weight`` -> ``features.<i>.weight`` (torchvision's keys)."""
    sd = {"features." + k.split(".", 1)[1]: v.clone() for k, v in ref.net.state_dict().items()}
    if with_classifier:  # a full torchvision file also holds the classifier, which LPIPS ignores
        sd["classifier.1.weight"] = torch.zeros(4, 4)
        sd["classifier.1.bias"] = torch.zeros(4)
    torch.save(sd, path)


@pytest.fixture(scope="module", params=["alex", "vgg"])
def pair(request, tmp_path_factory):
    net = request.param
    tmp = tmp_path_factory.mktemp(f"lpips_{net}")
    (tmp / "hub").mkdir()
    ref = _build_oracle(net, tmp / "hub")
    trunk = tmp / TORCHVISION_FILES["alexnet" if net == "alex" else "vgg16"]
    _save_trunk_torchvision_layout(ref, trunk)
    ours = LPIPS(net, trunk_path=trunk)
    return net, ref, ours, trunk


def _structured_pairs():
    """A synthetic 64x64 scene (gradient, disc, stripes, checkerboard) against
    blurred, noisy and shifted versions of itself."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = ((yy - 24) ** 2 + (xx - 40) ** 2 < 14 ** 2).float()
    stripes = 0.5 + 0.5 * torch.sin(xx * 0.6)
    checker = ((yy // 8 + xx // 8) % 2).float()
    img = torch.stack([0.2 + 0.6 * xx / 63 * (1 - disc) + 0.9 * disc,
                       0.3 * stripes + 0.5 * (yy > 40).float() * checker,
                       0.7 * yy / 63 + 0.2 * checker * (1 - disc)])[None].clamp(0, 1)
    blurred = F.avg_pool2d(F.pad(img, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    g = torch.Generator().manual_seed(1)
    noisy = (img + 0.1 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    shifted = torch.roll(img, shifts=(3, -2), dims=(2, 3))
    x0 = torch.cat([img, img, img, blurred])
    x1 = torch.cat([blurred, noisy, shifted, noisy])
    return x0, x1


def test_matches_lpips_package_random_images(pair):
    net, ref, ours, _ = pair
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 48, 64, generator=g)
    x1 = torch.rand(3, 3, 48, 64, generator=g)
    with torch.no_grad():
        want = ref(x0, x1, normalize=True).flatten()
        got = ours(x0, x1)
    assert got.shape == (3,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_matches_lpips_package_structured_images(pair):
    net, ref, ours, _ = pair
    x0, x1 = _structured_pairs()
    with torch.no_grad():
        want = ref(x0, x1, normalize=True).flatten()
        got = ours(x0, x1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(want.tolist(), 6))) == 4  # four genuinely different distances
    # the score is the mean of the per-image values
    assert lpips_score(x0, x1, ours) == pytest.approx(want.mean().item(), rel=1e-5, abs=1e-6)


def test_gradient_matches_lpips_package(pair):
    """Usable as a perceptual loss: input gradients agree with the package's."""
    net, ref, ours, _ = pair
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 48, 48, generator=g)
    a = torch.rand(2, 3, 48, 48, generator=g, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ref(a, target, normalize=True).sum().backward()
    ours(b, target).sum().backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7)


def test_identical_images_score_zero(pair):
    _, _, ours, _ = pair
    x = torch.rand(2, 3, 40, 52)
    with torch.no_grad():
        assert torch.equal(ours(x, x), torch.zeros(2))
    assert lpips_score(x, x, ours) == 0.0


def test_found_through_restore_weights_dir(pair, monkeypatch, tmp_path):
    net, _, ours, trunk = pair
    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(trunk.parent))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, source = load_lpips(net)
    assert model is not None
    assert "$RESTORE_WEIGHTS_DIR" in source and "lpips" in source and net in source
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ours.state_dict().values()))


def test_trunk_keys_are_torchvisions():
    import torchvision.models as tvm

    for net, ctor in (("alex", tvm.alexnet), ("vgg", tvm.vgg16)):
        with torch.device("meta"):
            tv_keys = {k for k in ctor(weights=None).state_dict() if k.startswith("features.")}
        from restore_lib.lpips import _build_trunk
        assert {"features." + k for k in _build_trunk(net).state_dict()} == tv_keys


# --------------------------------------------------------------------------- errors

def test_bad_trunk_file_names_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11), "features.3.weight": torch.zeros(192, 64, 5, 5),
                "features.3.bias": torch.zeros(192)}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pth.*missing keys.*features\.0\.bias"):
        LPIPS("alex", trunk_path=path)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pth.*shape mismatches.*features\.0\.weight"):
        LPIPS("alex", trunk_path=path)
    torch.save({"model": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pth"):
        LPIPS("vgg", trunk_path=path)


def test_bad_inputs_raise(pair):
    net, _, ours, _ = pair
    x = torch.rand(1, 3, 48, 48)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lpips_score(x * 2 - 1, x, ours)
    with pytest.raises(ValueError, match="differ in shape"):
        ours(x, x[..., :40])
    with pytest.raises(ValueError, match="RGB"):
        ours(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="at least"):
        ours(x[..., :12, :12], x[..., :12, :12])
    with pytest.raises(TypeError, match="load_lpips"):
        lpips_score(x, x, None)


def test_a_trunk_with_the_right_keys_but_not_torchvisions_file_is_said(pair):
    """The random trunk saved under torchvision's file name loads (same keys), but its sha256 is not the one
    torchvision publishes: the source line says so, with the hash."""
    from restore_lib.utils import sha256_file

    net, _, ours, trunk = pair
    assert ours.trunk_sha256 == sha256_file(trunk) and not ours.trunk_is_torchvision
    assert f"sha256 {ours.trunk_sha256[:12]}" in ours.trunk_source and "NOT torchvision's" in ours.trunk_source

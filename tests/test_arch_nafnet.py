"""NAFNet / NAFNet Baseline: reference counts and keys, checkpoint round trips,
any input size, the TLSC test-time pooling and the ablation switches.

Oracles: parameter/key counts of the official classes (megvii-research/NAFNet
@2b4af71, measured on CPU) and an independent closed-form parameter count;
output values of the official ``NAFNet``/``Baseline``/``NAFNetLocal``/
``BaselineLocal`` classes for fixed weights and inputs (pinned below,
float64); ``F.layer_norm`` and an explicit functional block for the block
maths; ``F.avg_pool2d`` for the local pooling.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore_lib.archs.nafnet import LayerNorm2d, LocalAvgPool2d, NAFBlock, tlsc_kernel_size
from restore_lib.models import build_model, count_parameters

from arch_checks import build_meta, check_output_sizes, check_roundtrip

SMALL = dict(width=16, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))


# --------------------------------------------------------------------------- counts and keys

def block_params(c, dw_expand, ffn_expand, gate, attention):
    """Closed-form parameter count of one block (independent of the module code)."""
    d, f = c * dw_expand, c * ffn_expand
    s = 2 if gate == "simple" else 1
    a = d // s
    n = (c * d + d) + (9 * d + d) + (a * c + c) + (c * f + f) + (f // s * c + c) + 4 * c + 2 * c
    n += a * a + a if attention == "sca" else a * (a // 2) + a // 2 + (a // 2) * a + a
    return n


def net_params(width, enc_blk_nums, middle_blk_num, dec_blk_nums, dw_expand=2, ffn_expand=2, gate="simple",
               attention="sca"):
    blk = lambda c: block_params(c, dw_expand, ffn_expand, gate, attention)  # noqa: E731
    n = (3 * width * 9 + width) + (width * 3 * 9 + 3)
    chan = width
    for k in enc_blk_nums:
        n += k * blk(chan) + (chan * 2 * chan * 4 + 2 * chan)
        chan *= 2
    n += middle_blk_num * blk(chan)
    for k in dec_blk_nums:
        n += chan * 2 * chan
        chan //= 2
        n += k * blk(chan)
    return n


GOPRO = dict(width=32, enc_blk_nums=(1, 1, 1, 28), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))
SIDD = dict(width=32, enc_blk_nums=(2, 2, 4, 8), middle_blk_num=12, dec_blk_nums=(2, 2, 2, 2))

# (registry name, preset, official count, official keys, closed-form config)
REFERENCE = [
    ("nafnet", None, 17_111_907, 664, GOPRO),
    ("nafnet", "width64", 67_888_835, 664, {**GOPRO, "width": 64}),
    ("nafnet", "sidd_width32", 29_159_715, 664, SIDD),
    ("nafnet", "sidd_width64", 115_982_915, 664, {**SIDD, "width": 64}),
    ("nafnet_baseline", None, 17_023_875, 736, dict(GOPRO, dw_expand=1, gate="gelu", attention="ca")),
    ("nafnet_baseline", "width64", 112_036_291, 736, dict(GOPRO, width=64, dw_expand=2, gate="gelu",
                                                          attention="ca")),
    ("nafnet_baseline", "sidd_width32", 29_056_227, 736, dict(SIDD, dw_expand=1, gate="gelu", attention="ca")),
]


@pytest.mark.parametrize("name,preset,count,keys,cfg", REFERENCE, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_reference_counts(name, preset, count, keys, cfg):
    model = build_meta(name, preset)
    assert count_parameters(model) == count
    assert net_params(**cfg) == count  # the closed form agrees with the official class
    assert len(model.state_dict()) == keys


def test_gopro_width32_key_names_and_shapes():
    sd = build_meta("nafnet").state_dict()
    keys = list(sd)
    assert keys[0] == "intro.weight" and keys[-1] == "downs.3.bias"  # the reference's registration order
    shapes = {
        "intro.weight": (32, 3, 3, 3), "intro.bias": (32,), "ending.weight": (3, 32, 3, 3), "ending.bias": (3,),
        "encoders.0.0.beta": (1, 32, 1, 1), "encoders.0.0.gamma": (1, 32, 1, 1),
        "encoders.0.0.norm1.weight": (32,), "encoders.0.0.conv1.weight": (64, 32, 1, 1),
        "encoders.0.0.conv2.weight": (64, 1, 3, 3), "encoders.0.0.sca.1.weight": (32, 32, 1, 1),
        "encoders.0.0.conv3.weight": (32, 32, 1, 1), "encoders.0.0.conv5.weight": (32, 32, 1, 1),
        "encoders.3.27.conv1.weight": (512, 256, 1, 1), "middle_blks.0.beta": (1, 512, 1, 1),
        "ups.0.0.weight": (1024, 512, 1, 1), "decoders.3.0.gamma": (1, 32, 1, 1),
        "downs.0.weight": (64, 32, 2, 2), "downs.3.bias": (512,),
    }
    for k, shape in shapes.items():
        assert tuple(sd[k].shape) == shape, k
    assert "ups.0.0.bias" not in sd


def test_baseline_key_names_and_shapes():
    sd = build_meta("nafnet_baseline").state_dict()
    assert tuple(sd["encoders.0.0.conv1.weight"].shape) == (32, 32, 1, 1)  # dw_expand 1
    assert tuple(sd["encoders.0.0.se.1.weight"].shape) == (16, 32, 1, 1)
    assert tuple(sd["encoders.0.0.se.3.weight"].shape) == (32, 16, 1, 1)
    assert tuple(sd["encoders.0.0.conv5.weight"].shape) == (32, 64, 1, 1)  # GELU keeps all FFN channels
    assert not any(".sca." in k for k in sd)


# --------------------------------------------------------------------------- round trips and sizes

@pytest.mark.parametrize("name", ["nafnet", "nafnet_baseline"])
def test_roundtrip_small(name, tmp_path):
    check_roundtrip(name, tmp_path, preset="small", inputs=(torch.rand(1, 3, 24, 24),))


@pytest.mark.parametrize("name", ["nafnet", "nafnet_baseline"])
def test_any_size_small(name):
    model = build_model(name, "small").eval()
    assert model.size_multiple == 16
    check_output_sizes(model, sizes=((17, 23), (32, 32), (29, 40), (1, 5)))


def test_zero_padding_like_the_reference():
    """check_image_size pads with zeros: running on the zero-padded input and
    cropping must give exactly the same result (reflect padding would not)."""
    model = fill_deterministic(build_model("nafnet", "small").double().eval())
    x = torch.rand(1, 3, 17, 23, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        y_pad = model(F.pad(x, (0, 9, 0, 15)))[..., :17, :23]
    torch.testing.assert_close(y, y_pad, rtol=0, atol=0)


# --------------------------------------------------------------------------- outputs vs the official classes

def fill_deterministic(model):
    """Weights shared with the pinned reference run: per parameter, in
    state_dict order, uniform draws from numpy's legacy RandomState(0);
    +-1 for beta/gamma and the channel-attention convs, +-0.2 elsewhere."""
    rs = np.random.RandomState(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            a = 1.0 if (".sca." in n or ".se." in n or n.endswith(("beta", "gamma"))) else 0.2
            p.copy_(torch.from_numpy(rs.uniform(-a, a, size=tuple(p.shape))))
    return model


def det_input(h, w):
    i = torch.arange(h, dtype=torch.float64).view(1, 1, h, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, 1, 1, w)
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    return (0.1 + 0.8 * (j >= w // 2) + 0.1 * torch.sin(0.13 * i + 0.29 * j + c)).clamp(0, 1)


def summary(y):
    """Sum, then the RGB values at (5, 7), the last pixel and just right of the centre."""
    h, w = y.shape[-2:]
    return [y.sum().item()] + torch.cat([y[0, :, 5, 7], y[0, :, -1, -1], y[0, :, h // 2, w // 2 + 1]]).tolist()


# Official classes (small config: width 16, blocks [1,1,1,1]/1/[1,1,1,1]; Baseline dw_expand 1),
# fill_deterministic weights, float64. "local" = NAFNetLocal/BaselineLocal(train_size=(1,3,32,32)).
PINNED = {
    ("nafnet", "37x53"): [-113.05811115, -1.6760305095, 3.1453257642, 1.3401245948, -1.783590665, 0.9164609041,
                          -10.4226942342, 6.5998592267, -3.103142597, -4.5858812131],
    ("nafnet", "80x112"): [-1384.2479386, -1.6768350816, 3.1406306119, 1.333725805, -5.2863991696, -3.103111937,
                           4.6811084151, -0.525040496, -8.467716622, -0.7202863458],
    ("nafnet", "80x112 local"): [-1382.42725134, -1.6753083328, 3.1429097946, 1.3382264876, -5.2875473759,
                                 -3.0972098815, 4.6842215332, -0.5243249836, -8.4691628908, -0.725663203],
    ("nafnet_baseline", "37x53"): [2851.31135231, -2.0703113406, 2.3364910106, 2.5747006144, -2.0854037788,
                                   -0.6242763654, 2.5786211525, -1.2233329825, 1.6638365404, -0.2629972107],
    ("nafnet_baseline", "80x112"): [14397.45314489, -2.0664922144, 2.3024575527, 2.55816712, -3.52155133,
                                    5.405180961, -14.9454452702, 1.0954259659, -8.3007602113, 1.8335864862],
    ("nafnet_baseline", "80x112 local"): [14401.02879366, -2.0676624036, 2.31803026, 2.5425282115, -3.5210185784,
                                          5.41214295, -14.9609185882, 1.0869049023, -8.3351112164, 1.8301611251],
}


@pytest.mark.parametrize("name", ["nafnet", "nafnet_baseline"])
def test_outputs_match_official_classes(name):
    model = fill_deterministic(build_model(name, "small")).double().eval()
    local = fill_deterministic(build_model(name, "small", tlsc=True, train_size=(1, 3, 32, 32))).double().eval()
    with torch.no_grad():
        got = {"37x53": model(det_input(37, 53)), "80x112": model(det_input(80, 112)),
               "80x112 local": local(det_input(80, 112))}
    for case, y in got.items():
        np.testing.assert_allclose(summary(y), PINNED[(name, case)], rtol=1e-8, atol=1e-7, err_msg=case)


# --------------------------------------------------------------------------- pieces

def test_layernorm2d_matches_layer_norm_over_channels():
    ln = LayerNorm2d(5).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    # oracle: the reference's formula, biased variance, eps 1e-6
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    ref = (x - mu) / torch.sqrt(var + 1e-6) * ln.weight.view(1, -1, 1, 1) + ln.bias.view(1, -1, 1, 1)
    out = ln(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, ln.weight, ln.bias], g)
    want = torch.autograd.grad(ref, [x, ln.weight, ln.bias], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def functional_block(b: NAFBlock, x, gate, attention):
    """The block written out from the paper's equations with the block's weights."""
    def ln(t, m):
        mu = t.mean(1, keepdim=True)
        v = ((t - mu) ** 2).mean(1, keepdim=True)
        return (t - mu) / torch.sqrt(v + 1e-6) * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)

    def conv(t, m, groups=1):
        return F.conv2d(t, m.weight, m.bias, padding=m.weight.shape[-1] // 2, groups=groups)

    def act(t):
        if gate == "simple":
            h = t.shape[1] // 2
            return t[:, :h] * t[:, h:]
        return 0.5 * t * (1 + torch.erf(t / 2 ** 0.5))

    t = act(conv(conv(ln(x, b.norm1), b.conv1), b.conv2, groups=b.conv2.weight.shape[0]))
    pooled = t.mean((2, 3), keepdim=True)
    if attention == "sca":
        w = conv(pooled, b.sca[1])
    else:
        w = torch.sigmoid(conv(torch.relu(conv(pooled, b.se[1])), b.se[3]))
    y = x + conv(t * w, b.conv3) * b.beta
    return y + conv(act(conv(ln(y, b.norm2), b.conv4)), b.conv5) * b.gamma


@pytest.mark.parametrize("gate", ["simple", "gelu"])
@pytest.mark.parametrize("attention", ["sca", "ca"])
def test_block_matches_equations(gate, attention):
    torch.manual_seed(0)
    b = NAFBlock(8, dw_expand=2, ffn_expand=2, gate=gate, attention=attention).double()
    with torch.no_grad():
        for p in b.parameters():
            p.uniform_(-0.5, 0.5)
    x = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(b(x), functional_block(b, x, gate, attention), rtol=1e-10, atol=1e-10)


ARMS = [
    dict(),                                         # Baseline: GELU + CA
    dict(gate="simple", dw_expand=2),               # SimpleGate + CA
    dict(gate="gelu", dw_expand=1, attention="sca"),  # GELU + SCA
    dict(gate="simple", attention="sca", dw_expand=2),  # SimpleGate + SCA = NAFNet's block
]


@pytest.mark.parametrize("arm", ARMS)
def test_ablation_arms_build_and_run(arm, tmp_path):
    name = "nafnet_baseline"
    cfg = {"dw_expand": 1, "ffn_expand": 2, "gate": "gelu", "attention": "ca", **arm}
    model = build_model(name, "small", **arm).eval()
    assert count_parameters(model) == net_params(**SMALL, **cfg)
    keys = model.state_dict()
    assert any(f".{'sca' if cfg['attention'] == 'sca' else 'se'}.1.weight" in k for k in keys)
    check_output_sizes(model, sizes=((19, 21),))
    check_roundtrip(name, tmp_path, preset="small", inputs=(torch.rand(1, 3, 16, 16),), **arm)


def test_gate_switch_keeps_keys():
    a = build_meta("nafnet", "small").state_dict()
    b = build_meta("nafnet", "small", gate="gelu", dw_expand=1).state_dict()
    assert list(a) == list(b)


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match="gate"):
        build_model("nafnet", "small", gate="relu")
    with pytest.raises(ValueError, match="attention"):
        build_model("nafnet", "small", attention="se")
    with pytest.raises(ValueError, match="same length"):
        build_model("nafnet", "small", dec_blk_nums=(1, 1, 1))
    with pytest.raises(ValueError, match="even"):
        build_model("nafnet", "small", width=3, dw_expand=1)
    with pytest.raises(ValueError, match="train_size"):
        build_model("nafnet", "small", tlsc=True, train_size=(64,))


# --------------------------------------------------------------------------- TLSC

def local_pool_oracle(x, kh, kw):
    h, w = x.shape[-2:]
    if kh >= h and kw >= w:
        return x.mean((2, 3), keepdim=True)
    k1, k2 = min(h, kh), min(w, kw)
    out = F.avg_pool2d(x, (k1, k2), stride=1)
    dh, dw = h - out.shape[-2], w - out.shape[-1]
    # replicate-pad, centred, the odd extra row/column at the bottom/right
    out = torch.cat([out[..., :1, :]] * (dh // 2) + [out] + [out[..., -1:, :]] * (dh - dh // 2), dim=-2)
    return torch.cat([out[..., :1]] * (dw // 2) + [out] + [out[..., -1:]] * (dw - dw // 2), dim=-1)


@pytest.mark.parametrize("hw,kernel", [((20, 30), (7, 5)), ((20, 30), (24, 9)), ((9, 8), (12, 12)),
                                       ((16, 25), (16, 4)), ((11, 13), (1, 1))])
def test_local_pool_matches_avg_pool(hw, kernel):
    x = torch.rand(2, 3, *hw, dtype=torch.float64)
    got = LocalAvgPool2d(kernel)(x)
    want = local_pool_oracle(x, *kernel)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_local_pool_half_precision_does_not_overflow():
    x = torch.full((1, 2, 300, 320), 0.75)  # running sums reach 72,000 > float16's 65,504
    got = LocalAvgPool2d((100, 90))(x.half())
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), torch.full_like(x, 0.75), rtol=0, atol=1e-3)


def test_tlsc_kernel_sizes_match_reference():
    # read from the official NAFNetLocal(train_size=(1, 3, 100, 70)) with the small config
    want = {"encoders.0.0.sca.0": (168, 120), "encoders.1.0.sca.0": (84, 60), "encoders.2.0.sca.0": (42, 30),
            "encoders.3.0.sca.0": (21, 15), "decoders.0.0.sca.0": (21, 15), "decoders.1.0.sca.0": (42, 30),
            "decoders.2.0.sca.0": (84, 60), "decoders.3.0.sca.0": (168, 120), "middle_blks.0.sca.0": (10, 7)}
    model = build_model("nafnet", "small", tlsc=True, train_size=(1, 3, 100, 70))
    got = {n: m.kernel_size for n, m in model.named_modules() if isinstance(m, LocalAvgPool2d)}
    assert got == want
    assert [tlsc_kernel_size(level, (256, 256), 16) for level in range(5)] == [(384, 384), (192, 192), (96, 96),
                                                                             (48, 48), (24, 24)]


def test_tlsc_equals_global_at_train_size_and_differs_above():
    torch.manual_seed(0)
    plain = fill_deterministic(build_model("nafnet", "small").double().eval())
    local = fill_deterministic(build_model("nafnet", "small", tlsc=True, train_size=(48, 64)).double().eval())
    assert list(plain.state_dict()) == list(local.state_dict())
    with torch.no_grad():
        for hw in [(48, 64), (40, 50)]:  # at (or below) train_size every window covers the map
            x = torch.rand(1, 3, *hw, dtype=torch.float64)
            torch.testing.assert_close(local(x), plain(x), rtol=0, atol=0)
        x = det_input(96, 160)
        y_local, y_plain = local(x), plain(x)
        assert (y_local - y_plain).abs().max() > 1e-3
        local.set_tlsc(False)  # switching back restores global pooling exactly
        torch.testing.assert_close(local(x), y_plain, rtol=0, atol=0)
        local.set_tlsc(True, (48, 64))
        torch.testing.assert_close(local(x), y_local, rtol=0, atol=0)

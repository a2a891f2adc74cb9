"""Paired augmentation (restore_lib.data.augment)."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from restore_lib.data.augment import PairedAugment

GEOMETRY_ONLY = dict(brightness_contrast=0.0, gaussian_blur=0.0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _all_geometric_variants(x):
    """Oracle: the 8 flip/rot90 images of x (the dihedral group) plus nothing else."""
    out = []
    for k in range(4):
        r = torch.rot90(x, k, dims=(-2, -1))
        out += [r, torch.flip(r, dims=[-1])]
    return out


def test_flip_and_rot90_oracles():
    x = torch.rand(3, 6, 9)
    lq, _ = PairedAugment(hflip=1.0, rot90=0.0)(x, None, _gen(0))
    assert torch.equal(lq, torch.flip(x, dims=[-1]))
    lq, _ = PairedAugment(hflip=0.0, vflip=1.0, rot90=0.0)(x, None, _gen(0))
    assert torch.equal(lq, torch.flip(x, dims=[-2]))
    seen = set()
    for s in range(30):
        lq, _ = PairedAugment(hflip=0.0, rot90=1.0)(x, None, _gen(s))
        k = [j for j in (1, 2, 3) if lq.shape == torch.rot90(x, j, (-2, -1)).shape
             and torch.equal(lq, torch.rot90(x, j, (-2, -1)))]
        assert len(k) == 1          # always a real quarter turn (k = 1, 2 or 3)
        seen.add(k[0])
    assert seen == {1, 2, 3}


def test_identical_geometry_on_lq_and_gt():
    x = torch.rand(3, 16, 16)
    aug = PairedAugment.report_a(**GEOMETRY_ONLY)
    changed = 0
    for s in range(20):
        lq, gt = aug(x.clone(), x.clone(), _gen(s))
        assert torch.equal(lq, gt)
        changed += not torch.equal(lq, x)
    assert changed >= 10


def test_report_b_only_synchronised_flips():
    x = torch.rand(3, 8, 12)
    y = torch.rand(3, 8, 12)
    aug = PairedAugment.report_b()
    for s in range(16):
        lq, gt = aug(x, y, _gen(s))
        variants = [(torch.flip(x, d), torch.flip(y, d)) if d else (x, y) for d in ([], [-1], [-2], [-2, -1])]
        assert sum(torch.equal(lq, a) and torch.equal(gt, b) for a, b in variants) == 1


def test_photometric_only_on_lq():
    x = torch.rand(3, 20, 20) * 0.8 + 0.1
    aug = PairedAugment(hflip=0, rot90=0, brightness_contrast=1.0, gaussian_blur=1.0)
    lq, gt = aug(x.clone(), x.clone(), _gen(3))
    assert torch.equal(gt, x)
    assert not torch.allclose(lq, x, atol=1e-3)
    both = PairedAugment(hflip=0, rot90=0, brightness_contrast=1.0, gaussian_blur=1.0, photometric_on="both")
    lq2, gt2 = both(x.clone(), x.clone(), _gen(3))
    assert torch.equal(lq2, lq) and torch.equal(gt2, lq)


def test_brightness_and_blur_against_independent_oracles():
    x = torch.rand(3, 24, 24) * 0.8 + 0.1
    aug = PairedAugment(hflip=0, rot90=0, brightness_contrast=1.0, contrast_limit=0.0)
    prm = aug.sample(_gen(5))
    assert prm.contrast == 1.0 and prm.brightness != 1.0
    lq, _ = aug(x, None, _gen(5))
    torch.testing.assert_close(lq, (x * prm.brightness).clamp(0, 1), atol=1e-6, rtol=0)

    blur = PairedAugment(hflip=0, rot90=0, gaussian_blur=1.0)
    prm = blur.sample(_gen(7))
    k, sigma = prm.blur_kernel, prm.blur_sigma
    assert k in (3, 5, 7) and sigma == pytest.approx(0.3 * ((k - 1) / 2 - 1) + 0.8)
    lq, _ = blur(x, None, _gen(7))
    # scipy 'mirror' = torch 'reflect' padding; kernel truncated to radius (k-1)/2
    ref = np.stack([ndi.gaussian_filter(c, sigma, mode="mirror", radius=(k - 1) // 2) for c in x.double().numpy()])
    np.testing.assert_allclose(lq.numpy(), ref, atol=1e-5)


def test_determinism_given_the_generator():
    x, y = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    aug = PairedAugment.report_a()
    a = aug(x, y, _gen(11))
    b = aug(x, y, _gen(11))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    n1 = aug(x, y, np.random.default_rng(11))
    n2 = aug(x, y, np.random.default_rng(11))
    assert torch.equal(n1[0], n2[0]) and torch.equal(n1[1], n2[1])
    outs = [aug(x, y, _gen(s))[0] for s in range(8)]
    assert len({o.sum().item() for o in outs}) > 3
    torch.manual_seed(0)          # the global RNG plays no part
    c = aug(x, y, _gen(11))
    torch.manual_seed(1)
    d = aug(x, y, _gen(11))
    assert torch.equal(c[0], d[0])


def test_report_a_probabilities():
    aug = PairedAugment.report_a()
    g = _gen(0)
    draws = [aug.sample(g) for _ in range(3000)]
    freq = {
        "hflip": np.mean([p.hflip for p in draws]),
        "vflip": np.mean([p.vflip for p in draws]),
        "rot90": np.mean([p.rot90_k > 0 for p in draws]),
        "scale_rotate": np.mean([p.affine for p in draws]),
        "brightness_contrast": np.mean([p.brightness != 1.0 for p in draws]),
        "gaussian_blur": np.mean([p.blur_kernel > 0 for p in draws]),
    }
    expected = dict(hflip=0.5, vflip=0.0, rot90=0.5, scale_rotate=0.5, brightness_contrast=0.3, gaussian_blur=0.2)
    for k, v in expected.items():
        assert abs(freq[k] - v) < 0.04, (k, freq[k])
    assert max(abs(p.angle) for p in draws) <= 45 and all(0.9 <= p.zoom <= 1.1 for p in draws)


def test_sr_alignment_flips_and_rot90():
    s = 4
    lq = torch.rand(3, 6, 10)
    gt = lq.repeat_interleave(s, dim=-1).repeat_interleave(s, dim=-2)   # gt = nearest-upsample(lq)
    aug = PairedAugment(hflip=0.5, vflip=0.5, rot90=0.5, scale=s)
    for seed in range(16):
        a_lq, a_gt = aug(lq, gt, _gen(seed))
        assert a_gt.shape[-2:] == (a_lq.shape[-2] * s, a_lq.shape[-1] * s)
        assert torch.equal(a_gt[..., ::s, ::s], a_lq)       # nearest-downsample(aug(gt)) == aug(lq)
        assert torch.equal(a_gt[..., s - 1::s, s - 1::s], a_lq)


def _smooth_field(n, step):
    """A smooth RGB image sampled at pixel centres (i + 0.5) * step."""
    c = (torch.arange(n, dtype=torch.float64) + 0.5) * step
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(x / 9 + 0.3) * torch.cos(y / 13),
                        0.5 + 0.4 * torch.cos(x / 7 - y / 11),
                        0.5 + 0.3 * torch.sin((x + y) / 10)]).float()


def test_sr_alignment_scale_rotate():
    s = 4
    lq, gt = _smooth_field(32, s), _smooth_field(128, 1)
    aug = PairedAugment(hflip=0, rot90=0, scale_rotate=1.0, shift_limit=0.05, scale=s)
    inner = (slice(None), slice(8, 24), slice(8, 24))
    for seed in range(4):
        prm = aug.sample(_gen(seed))
        assert prm.affine and prm.angle != 0
        a_lq, a_gt = aug(lq, gt, _gen(seed))
        down = F.avg_pool2d(a_gt[None], s)[0]
        err = (down - a_lq)[inner].abs().max()
        assert err < 0.03
        # a misalignment of a quarter lq pixel would be clearly larger
        for shift in (1, -1):
            off = F.avg_pool2d(torch.roll(a_gt, shift, dims=-1)[None], s)[0]
            assert (off - a_lq)[inner].abs().max() > 2 * err


def test_errors():
    x = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="hflip"):
        PairedAugment(hflip=1.5)
    with pytest.raises(ValueError, match="photometric_on"):
        PairedAugment(photometric_on="clean")
    with pytest.raises(ValueError, match="does not match"):
        PairedAugment(scale=2)(x, torch.rand(3, 8, 8), _gen(0))
    with pytest.raises(TypeError, match="Generator"):
        PairedAugment()(x, x, 0)
    with pytest.raises(ValueError, match="blur_kernels"):
        PairedAugment(blur_kernels=(4,))

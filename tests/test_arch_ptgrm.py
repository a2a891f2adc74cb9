"""PTG-RM (restore_lib.archs.ptgrm): reference counts and key shapes, outputs
pinned from the reference code, the output formulas, the per-pixel kernel
convolution and the SNR map against explicit oracles, and every ablation row."""
import numpy as np
import pytest
import scipy.ndimage
import torch

from restore_lib.archs.ptgrm import PTGRM, per_pixel_conv, snr_map
from restore_lib.models import build_model, count_parameters

from arch_checks import (build, build_meta, check_key_shapes, check_output_sizes, check_param_count,
                         check_param_order, check_roundtrip, deterministic_fill, reference_data, reference_fact)

SVE = ("mapp_space1.", "mapp_space2.", "mapp_position1.", "mapp_position2.", "r1_mask", "r2_mask",
       "transformer", "resnet")
CSA = ("mapp_space11", "mapp_space22", "mapp_position11", "mapp_position22", "mapping11", "mapping12",
       "mapp11", "mapp12", "mapp1.", "refine11")

#: parameter counts of the ablation rows (512-d prior; the 2D row has a 1280-channel map)
ABLATION_PARAMS = {
    "w/o SP, with CA and SA": 487_955,
    "with SP, w/o CA, with SA": 670_199,
    "with SP and CA, w/o SA": 360_007,
    "Large R w/o SP/CA/SA": 669_806,
    "w/o Position Embedding S": 647_607,
    "SNR Value as Mask": 509_767,
    "Use 1D Priors via Con.": 680_076,
    "Use 2D Priors via Con.": 680_076,
    "Full Setting": 671_735,
}


def inputs(n=2, h=16, w=24, prior_dim=512, seed=1):
    g = torch.Generator().manual_seed(seed)
    initial = torch.rand(n, 3, h, w, generator=g) * 1.2 - 0.1
    degraded = torch.rand(n, 3, h, w, generator=g)
    prior = torch.nn.functional.normalize(torch.randn(n, prior_dim, generator=g), dim=1)
    return initial, degraded, prior


@pytest.fixture(scope="module")
def full():
    return build("ptgrm")


def test_default_counts_and_reference_keys(full):
    sd = full.state_dict()
    fact = reference_fact("ptgrm/default")  # measured on the reference refinement2
    assert (count_parameters(full), len(sd)) == (fact["params"], fact["keys"]) == (671_735, 77)
    expected = {
        "conv_last2.weight": (16, 16, 3, 3), "conv_last2.bias": (16,),
        "conv_last3.weight": (3, 16, 3, 3), "conv_last3.bias": (3,),
        "mapp_space1.weight": (256, 512), "mapp_space2.weight": (64, 256),
        "mapp_space11.weight": (256, 512), "mapping11.weight": (16, 80),
        "mapp_position1.weight": (16, 2, 3, 3), "mapp_position22.weight": (16, 16, 1, 1),
        "r1_mask.weight": (16, 96, 3, 3), "r2_mask.weight": (1, 16, 3, 3),
        "mapp11.weight": (144, 96, 3, 3), "mapp12.weight": (144, 144, 3, 3), "mapp1.weight": (1, 16, 3, 3),
        "refine11.weight": (16, 32, 1, 1), "r1.weight": (16, 6, 3, 3), "r1norm.weight": (16,),
        "r1_decoder.weight": (64, 16, 3, 3), "resnet.conv2.bias": (16,),
        "transformer.3.attn.temperature": (1, 1, 1), "transformer.3.ffn.project_out.weight": (16, 42, 1, 1),
    }
    check_key_shapes(sd, expected)
    assert not any(k.startswith("transformer.4") for k in sd)

    def total(prefixes):
        return sum(v.numel() for k, v in sd.items() if k.startswith(prefixes))
    # the rounded split of reference_facts.json, then our exact split
    split = reference_fact("ptgrm/default/split_approx")
    rest = count_parameters(full) - total(SVE) - total(CSA)
    assert (round(total(SVE), -2), round(total(CSA), -2), round(total(("mapp11", "mapp12")), -3), round(rest, -2)) \
        == (split["sve"], split["csa"], split["kernel_generator"], split["rest"])
    assert (total(SVE), total(CSA), total(("mapp11", "mapp12"))) == (183_780, 461_232, 311_040)


def test_parameter_order_is_the_official_one(full):
    """``parameters()`` follows the reference ``refinement2`` (its creation
    order), so optimizer states line up and a seed draws the same tensors."""
    check_param_order(full, "ptgrm/default")
    torch.manual_seed(5)
    model = PTGRM()
    torch.manual_seed(5)  # the reference creates conv_last2, conv_last3, then mapp_space1 first
    conv_last2, conv_last3 = torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.Conv2d(16, 3, 3, padding=1)
    mapp_space1 = torch.nn.Linear(512, 256, bias=False)
    for ours, replay in ((model.conv_last2, conv_last2), (model.conv_last3, conv_last3)):
        assert torch.equal(ours.weight, replay.weight) and torch.equal(ours.bias, replay.bias)
    assert torch.equal(model.mapp_space1.weight, mapp_space1.weight)


@pytest.mark.parametrize("row", list(PTGRM.ABLATIONS))
def test_ablation_rows_keep_the_official_order(row):
    """An ablation row drops parts in place; its extra parts (prior by
    concatenation, plain blocks) come after all the reference's parts."""
    official = reference_data("official_param_order.json")["ptgrm/default"]["names"]
    rank = {n: i for i, n in enumerate(official)}
    names = [n for n, _ in build_meta("ptgrm", **PTGRM.ABLATIONS[row]).named_parameters()]
    shared = [n for n in names if n in rank]
    assert shared == sorted(shared, key=rank.get)
    extra = [i for i, n in enumerate(names) if n not in rank]
    assert extra == list(range(len(shared), len(names)))
    assert all(names[i].startswith(("cat_", "plain.")) for i in extra)


def test_prior_dim_changes_only_the_first_linears():
    model = check_param_count("ptgrm", 1_064_951, preset="mobilenet_prior")
    assert 671_735 + 2 * (1280 - 512) * 256 == 1_064_951
    assert tuple(model.state_dict()["mapp_space1.weight"].shape) == (256, 1280)
    check_param_count("ptgrm", 671_735 + 435, preset="paper_output")


def test_matches_reference_outputs(full):
    """Values produced by the reference ``refinement2`` (forward([prior], initial,
    degraded), einops 0.8.2) with ``deterministic_fill`` weights on these inputs;
    our module differed from it by at most 6e-8. Pinned: refined − clamp(initial),
    i.e. the part the module adds."""
    model = deterministic_fill(full)
    initial, degraded, prior = inputs()
    with torch.no_grad():
        res = model(initial, degraded, prior) - initial.clamp(0, 1)
    close = dict(atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(res[0, :, 0, 0], torch.tensor([-0.0425935, 0.0750792, 0.0760210]), **close)
    torch.testing.assert_close(res[1, :, 15, 23], torch.tensor([-0.0571934, 0.0994241, 0.0831475]), **close)
    torch.testing.assert_close(res[0, :, 7, 11], torch.tensor([-0.0713340, 0.0683318, 0.0842537]), **close)
    assert res.mean().item() == pytest.approx(0.0306469, abs=1e-6)
    assert res.std().item() == pytest.approx(0.0703766, abs=1e-6)


def test_roundtrip_and_any_size(tmp_path):
    check_roundtrip("ptgrm", tmp_path, inputs=inputs(h=20, w=12))
    check_roundtrip("ptgrm", tmp_path, wrapper=None, preset="paper_output")
    model = build("ptgrm")
    prior = torch.randn(1, 512)
    check_output_sizes(model, sizes=((30, 42), (17, 23), (5, 9), (32, 32)),
                       call=lambda m, x: m(x, x.flip(-1), prior))


def test_padding_is_cropped_back(full):
    """An input already a multiple of 4 goes through unpadded; an odd one is
    padded and its output on the original pixels stays finite and sized."""
    initial, degraded, prior = inputs(h=16, w=24)
    with torch.no_grad():
        torch.testing.assert_close(full(initial, degraded, prior), full.forward_features(initial, degraded, prior))
        y = full(initial[..., :15, :22], degraded[..., :15, :22], prior)
    assert y.shape == (2, 3, 15, 22)


def _controlled_head(model, bias):
    """R_d's last conv outputs the constant ``bias`` everywhere."""
    with torch.no_grad():
        model.conv_last3.weight.zero_()
        model.conv_last3.bias.copy_(torch.tensor(bias))
    return model


def test_output_formula_code_mode():
    """Reference: Ī_c = clamp(Î_c, 0, 1) + I_r."""
    model = _controlled_head(build("ptgrm"), [0.1, -0.2, 0.3])
    initial, degraded, prior = inputs(h=12, w=20)
    with torch.no_grad():
        y = model(initial, degraded, prior)
    expect = initial.clamp(0, 1) + torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, expect)


def test_output_formula_paper_mode():
    """Paper: Ī_c = I_d + (Î_c − I_d)·I_m + I_r, [I_m, I_r] = R_d(f̄)."""
    m, r = [0.5, 2.0, -1.0], [0.1, 0.0, -0.3]
    model = _controlled_head(build("ptgrm", "paper_output"), m + r)
    initial, degraded, prior = inputs(h=12, w=20)
    with torch.no_grad():
        y = model(initial, degraded, prior)
    mm, rr = torch.tensor(m).view(1, 3, 1, 1), torch.tensor(r).view(1, 3, 1, 1)
    torch.testing.assert_close(y, degraded + (initial - degraded) * mm + rr)
    with torch.no_grad():  # zero head: the output is the degraded image itself
        model.conv_last3.bias.zero_()
        torch.testing.assert_close(model(initial, degraded, prior), degraded)


def test_prior_changes_the_output_and_batch_items_are_independent(full):
    model = deterministic_fill(full, seed=2)
    initial, degraded, _ = inputs(n=3, h=16, w=16)
    prior = torch.randn(3, 512, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(initial, degraded, prior)
        torch.testing.assert_close(y[1:], model(initial[1:], degraded[1:], prior[1:]), atol=1e-5, rtol=1e-5)
        assert (y - model(initial, degraded, prior.roll(1, 0))).abs().max() > 1e-3


def test_per_pixel_conv_against_loops():
    """out[c,y,x] = Σ_ij K[c·k·k + i·k + j, y, x] · f[c, y+i−p, x+j−p], replicate borders."""
    torch.manual_seed(0)
    for k in (3, 5):
        feat, kernels = torch.randn(2, 3, 5, 6), torch.randn(2, 3 * k * k, 5, 6)
        p = k // 2
        padded = torch.nn.functional.pad(feat, (p, p, p, p), mode="replicate")
        expect = torch.zeros_like(feat)
        for c in range(3):
            for i in range(k):
                for j in range(k):
                    expect[:, c] += kernels[:, c * k * k + i * k + j] * padded[:, c, i:i + 5, j:j + 6]
        torch.testing.assert_close(per_pixel_conv(feat, kernels, k), expect, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="kernels of shape"):
        per_pixel_conv(feat, kernels[:, :-1], 5)


def test_snr_map_against_scipy():
    """SNR-aware recipe with scipy's 5x5 uniform filter (mode='mirror' = cv2's reflect-101)."""
    img = torch.rand(2, 3, 13, 17, generator=torch.Generator().manual_seed(3))
    got = snr_map(img)
    for n in range(2):
        y = (img[n, 0] * 0.299 + img[n, 1] * 0.587 + img[n, 2] * 0.114).double().numpy()
        blur = scipy.ndimage.uniform_filter(y, size=5, mode="mirror")
        snr = blur / (np.abs(y - blur) + 1e-4)
        expect = np.clip(snr / (snr.max() + 1e-4), 0, 1)
        np.testing.assert_allclose(got[n, 0].numpy(), expect, atol=2e-4, rtol=1e-4)
    assert got.shape == (2, 1, 13, 17)


@pytest.mark.parametrize("row", list(PTGRM.ABLATIONS))
def test_ablation_rows_build_and_run(row):
    kwargs = PTGRM.ABLATIONS[row]
    model = build("ptgrm", **kwargs)
    n_params = count_parameters(model)
    print(f"{row}: {n_params:,} parameters")
    assert n_params == ABLATION_PARAMS[row]
    x = torch.rand(1, 3, 32, 32)
    prior = torch.rand(1, 1280, 3, 5) if kwargs.get("prior_concat") == "2d" else torch.randn(1, 512)
    with torch.no_grad():
        y = model(x, x, prior)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_ablation_switches_remove_their_parts():
    def keys(**kw):
        return {k.split(".")[0] for k in build_model("ptgrm", **kw).state_dict()}
    assert not keys(sve=False) & {"mapp_space1", "r1_mask", "transformer", "resnet", "mapp_position1"}
    assert not keys(channel_attention=False) & {"mapping11", "mapping12"}
    assert not keys(spatial_attention=False) & {"mapp11", "mapp12", "mapp1", "mapp_position11"}
    assert not {k for k in keys(position_embedding=False) if k.startswith("mapp_position")}
    assert not keys(sve_mask="snr") & {"mapp_space1", "mapp_space2", "r1_mask", "r2_mask", "mapp_position1"}
    plain = keys(**PTGRM.ABLATIONS["Large R w/o SP/CA/SA"])
    assert not {k for k in plain if k.startswith(("mapp", "r1_mask", "refine"))}


def test_large_r_ignores_the_prior_and_concat_rows_use_it():
    large = deterministic_fill(build("ptgrm", **PTGRM.ABLATIONS["Large R w/o SP/CA/SA"]))
    assert not large.uses_prior
    x, d, prior = inputs(n=1, h=16, w=16)
    with torch.no_grad():
        torch.testing.assert_close(large(x, d, None), large(x, d, prior))
        for row, p in (("Use 1D Priors via Con.", prior), ("Use 2D Priors via Con.", torch.rand(1, 1280, 2, 2))):
            model = deterministic_fill(build("ptgrm", **PTGRM.ABLATIONS[row]))
            assert not torch.allclose(model(x, d, p), model(x, d, p * 2), atol=1e-5)


def test_snr_mask_row_follows_the_snr_map():
    """With the SNR mask, a perfectly flat degraded image (SNR = 1 after
    normalisation) selects the short-range branch only: the transformer's
    weights no longer matter."""
    model = deterministic_fill(build("ptgrm", sve_mask="snr"))
    x, _, prior = inputs(n=1, h=16, w=16)
    flat = torch.full_like(x, 0.5)
    assert torch.allclose(snr_map(flat), torch.ones(1, 1, 16, 16), atol=1e-3)
    with torch.no_grad():
        y = model(x, flat, prior)
        for p in model.transformer.parameters():
            p.mul_(-3)
        torch.testing.assert_close(model(x, flat, prior), y, atol=1e-3, rtol=1e-3)


def test_bad_inputs_and_configs_name_the_problem(full):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="prior must be"):
        full(x, x, torch.randn(1, 256))
    with pytest.raises(ValueError, match="prior must be"):
        full(x, x, None)
    with pytest.raises(ValueError, match="one shape"):
        full(x, x[..., :8], torch.randn(1, 512))
    with pytest.raises(ValueError, match="output_mode"):
        build_model("ptgrm", output_mode="both")
    with pytest.raises(ValueError, match="prior_concat='2d'"):
        build_model("ptgrm", prior_concat="2d")
    with pytest.raises(ValueError, match="sve_mask='snr' needs sve=True"):
        build_model("ptgrm", sve=False, sve_mask="snr")

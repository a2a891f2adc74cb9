"""DiffIR two-stage training (report 04), smoke profile, at every recorded
seed: on held-out photos DiffIR-S2 (the prior estimated by the 4-step
diffusion, seeded) beats the blurred input and bicubic x4, on at least three
of four photos; S1 with the GT prior is not far below S2; stage 2's sampled
prior ends above 0.98 cosine with the stage-1 target and 4x closer in L1;
estimating the prior costs a few hundredths of a dB; sampling seeds barely
move the PSNR; the reference configs have the reference parameter counts; the
published tables (configs/04_diffir_two_stage/published.yaml) are recorded,
labelled and cited, report 003's Table 4 with PSNR before SSIM. Over the
seeds, every finding of published.yaml has the verdict its sentence states:
each model beats its input and stage 2 brings the sampled prior towards its
target, beyond noise; the no-prior DIRformer is within noise of DiffIR-S2;
for SR the oracle is below S2 (S2's DIRformer trains longer) and below the
no-prior DIRformer, beyond noise; the cost of estimating the prior and the
sampling seed are within noise."""
import math

from claims import check_verdicts


REPORT = "04_diffir_two_stage"

S2 = "DiffIR-S2, estimated prior"
S1 = "DiffIR-S1, GT prior (oracle)"
NO_PRIOR = "DIRformer, no prior"
REFERENCE_COUNTS = {"deblur S1": 26_742_206, "deblur S2": 26_911_934, "SR x4 S1": 24_801_478, "SR x4 S2": 24_971_206}
PUBLISHED = ("published_diffir_deblur", "published_diffir_sr_gan", "published_report_sr", "published_report_deblur")
#: the verdict over the recorded seeds of every finding in configs/04_diffir_two_stage/published.yaml:
#: "+" / "-": beyond noise, a above / below b; "0": within noise
VERDICTS = {
    "deblur_s2_vs_blurred": "+", "deblur_s2_vs_blurred_ssim": "+", "deblur_no_prior_vs_blurred": "+",
    "deblur_s1_vs_blurred": "+", "sr_s2_vs_bicubic": "+", "sr_no_prior_vs_bicubic": "+", "sr_s1_vs_bicubic": "+",
    "deblur_s2_vs_no_prior": "0", "sr_s2_vs_no_prior": "0",
    "deblur_s1_vs_no_prior": "+", "sr_s1_vs_no_prior": "-",
    "deblur_s1_vs_s2": "0", "sr_s1_vs_s2": "-",
    "deblur_gt_prior_in_s2": "0", "sr_gt_prior_in_s2": "0",
    "deblur_ipr_cosine_gain": "+", "sr_ipr_cosine_gain": "+",
    "deblur_ipr_vs_constant": "+", "sr_ipr_vs_constant": "0",
    "deblur_sampling_seed": "0", "sr_sampling_seed": "0",
}


def _table(record, tid):
    return next(t for t in record["tables"] if t["id"] == tid)


def check(m, record):
    for config, n in REFERENCE_COUNTS.items():
        assert m[f"param_counts/{config}/parameters"] == n, config

    # DiffIR-S2 beats the degraded input on the held-out photos
    for table, baseline in (("main_deblur", "blurred input"), ("main_sr", "bicubic x4 (MATLAB)")):
        gain = m[f"{table}/{S2}/PSNR"] - m[f"{table}/{baseline}/PSNR"]
        assert gain > (0.0 if table == "main_deblur" else 0.25), f"{table}: S2 gains only {gain:.3f} dB"
        assert m[f"{table}/{S2}/images better"] >= 3, table
        assert m[f"{table}/{S2}/SSIM"] > m[f"{table}/{baseline}/SSIM"], table
    assert m[f"main_sr/{S2}/PSNR"] > m["main_sr/LR input (nearest x4)/PSNR"] + 1.0

    for task in ("deblur", "sr"):
        gap = m[f"gaps/{task}/S1 oracle − S2 (dB)"]
        assert math.isfinite(gap), task
        assert abs(gap - (m[f"main_{task}/{S1}/PSNR"] - m[f"main_{task}/{S2}/PSNR"])) < 1e-9
        assert gap >= -0.5, f"{task}: S1 with the GT prior is {-gap:.2f} dB below S2"
        # estimating the prior costs little: S2's DIRformer with the GT prior is within 0.1 dB
        est = m[f"gaps/{task}/S2 with GT prior − S2 (dB)"]
        assert -0.05 <= est <= 0.1, f"{task}: estimation gap {est:.3f} dB"
        np_gap = m[f"gaps/{task}/S2 − no prior (dB)"]
        assert math.isfinite(np_gap) and abs(np_gap - (m[f"main_{task}/{S2}/PSNR"] -
                                                      m[f"main_{task}/{NO_PRIOR}/PSNR"])) < 1e-9, task

    # stage 2: the sampled IPR approaches the stage-1 target on the validation photos
    for task in ("deblur", "sr"):
        assert m[f"ipr_progress/{task}/cosine at step 0"] < 0.5, task
        assert m[f"ipr_progress/{task}/cosine at the end"] > 0.98, task
        assert m[f"ipr_progress/{task}/L1 at the end"] < 0.25 * m[f"ipr_progress/{task}/L1 at step 0"], task
        assert m[f"ipr_test/{task}/cosine"] > 0.98, task
    # deblurring: the sampled estimate is further from the target than the best constant guess
    assert m["ipr_test/deblur/L1(S2, S1)"] > m["ipr_test/deblur/constant-guess L1"]

    # seeded sampling: other sampling seeds change the mean PSNR by far less than the gains above
    for task in ("deblur", "sr"):
        assert m[f"seeds/{task}/PSNR range (dB)"] < 0.01, task

    # published figures (from published.yaml) are recorded, labelled and cited
    for tid in PUBLISHED:
        t = _table(record, tid)
        assert t["source"] == "published" and t["citation"], tid
    assert "DiffIR" in _table(record, "published_diffir_deblur")["citation"]
    assert _table(record, "published_diffir_deblur")["rows"][0] == ["GoPro", 33.20, 0.963]
    assert "Table 3" in _table(record, "published_report_sr")["citation"]
    deblur_pub = _table(record, "published_report_deblur")
    assert "Table 4" in deblur_pub["citation"] and deblur_pub["columns"][1:] == ["PSNR", "SSIM"]
    assert all(r[1] > 1.0 > r[2] for r in deblur_pub["rows"]), "PSNR and SSIM columns swapped"


def check_spread(diff):
    check_verdicts(REPORT, diff, VERDICTS)

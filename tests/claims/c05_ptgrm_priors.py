"""PTG-RM (report 05), smoke profile, at every recorded seed: the refinement
path runs and matches the module's output formula, every table is complete,
every delta is what the numbers say, and each PTG-RM ends with a training loss
below F's alone. Over the seeds: on heavy rain every R ends above F beyond
noise, while what a prior's information adds over zeros is within noise."""
import math

REPORT = "05_ptgrm_priors"
ABLATION_ROWS = ["w/o SP, with CA and SA", "with SP, w/o CA, with SA", "with SP and CA, w/o SA",
                 "Large R w/o SP/CA/SA", "w/o Position Embedding S", "SNR Value as Mask", "Use 1D Priors via Con.",
                 "Use 2D Priors via Con.", "Full Setting"]
PUBLISHED = {"LOL-real low light": (21.48, 25.50), "GoPro motion deblurring": (32.92, 33.18),
             "Deraining, average of 5 test sets": (33.96, 34.24)}
PARAMS_1280 = 1_064_951  # PTG-RM with MobileNetV2's 1280-d prior (671,735 with a 512-d prior)


def _rows(table):
    return {str(r[0]): dict(zip(table["columns"], r)) for r in table["rows"]}


def check(m, record):
    tables = {t["id"]: t for t in record["tables"]}
    params = record["params"]
    pairs = list(params["pairs"])

    # the student-facing output formula equals PTGRM's own output, in both modes
    assert m["fusion_check/max_abs_difference"] < 1e-6

    for tid in ("priors", "targets", "main", "prior_comparison", "prior_signal", "training", "published_headline",
                "published_priors", "published_ablation"):
        assert tid in tables, f"table {tid!r} missing"

    # priors: the three offline priors were used; CLIP is used or explicitly skipped
    priors = _rows(tables["priors"])
    assert all(priors[p]["status"] == "used" for p in ("mobilenet", "model", "zero")), priors
    assert priors["mobilenet"]["PTG-RM params"] == PARAMS_1280
    assert priors["clip"]["status"] in ("used", "skipped: no CLIP weights supplied")
    used = [p for p, r in priors.items() if r["status"] == "used"]

    # main table: every (pair, row) present, finite, deltas consistent with the numbers
    main = _rows(tables["main"])
    for pair in pairs:
        for arm in ["input", "original", *used]:
            row = main.get(f"{pair}:{arm}")
            assert row is not None, f"main table lacks {pair}:{arm}"
            assert math.isfinite(row["PSNR"]) and 0 < row["SSIM"] <= 1, row
        orig = main[f"{pair}:original"]
        assert orig["PSNR"] > main[f"{pair}:input"]["PSNR"] + 1.0, f"F does not restore {pair}"
        for arm in used:
            row = main[f"{pair}:{arm}"]
            assert abs(row["ΔPSNR"] - (row["PSNR"] - orig["PSNR"])) < 1e-9
            assert abs(row["ΔSSIM"] - (row["SSIM"] - orig["SSIM"])) < 1e-9
            assert row["PSNR (Δ)"] == f"{row['PSNR']:.2f} ({row['ΔPSNR']:+.2f})"
            assert row["params added"] > 0
        assert main[f"{pair}:mobilenet"]["params added"] == PARAMS_1280

    cmp_rows = _rows(tables["prior_comparison"])
    assert set(cmp_rows) == set(pairs)

    # PTG-RM learned: on the training crops its loss ends below F's alone (same crops, paired)
    training = _rows(tables["training"])
    for pair in pairs:
        for arm in used:
            run = training[f"{pair}:{arm}"]
            assert run["final loss R"] < run["final loss F"], f"{pair}:{arm}: R did not end below F"
    if params["run_ablations"]:
        full = training[f"{params['ablation_pair']}:mobilenet"]
        assert full["final loss R"] < 0.95 * full["final loss F"], "full PTG-RM: less than 5% below F"
        abl = tables["ablation"]
        assert [r[0] for r in abl["rows"]] == ABLATION_ROWS
        for r in abl["rows"]:
            assert math.isfinite(r[1]) and 0 < r[2] <= 1, r
        for name in ABLATION_ROWS[:-1]:
            assert f"{params['ablation_pair']}:mobilenet:{name}" in training

    # published figures beside ours, labelled
    pub = _rows(tables["published_headline"])
    for setting, (before, after) in PUBLISHED.items():
        assert (pub[setting]["Original PSNR"], pub[setting]["+PTG-RM PSNR"]) == (before, after)
    assert [r[0] for r in tables["published_ablation"]["rows"]] == ABLATION_ROWS
    for tid in ("published_headline", "published_priors", "published_ablation"):
        assert tables[tid]["source"] == "published" and "CVPR 2024" in tables[tid]["citation"]


def check_spread(diff):
    """Over the seeds: on heavy rain every trained R ends above F alone beyond noise; the prior's information
    (a real prior minus zeros) is within noise for both priors on both pairs at this profile."""
    for arm in ("mobilenet", "model", "zero"):
        d = diff(f"main/rain_heavy:restormer:{arm}/PSNR", "main/rain_heavy:restormer:original/PSNR")
        assert d.beyond_noise and d.mean > 0, d.verdict()
    for pair in ("lowlight:nafnet", "rain_heavy:restormer"):
        for arm in ("mobilenet", "model"):
            d = diff(f"main/{pair}:{arm}/PSNR", f"main/{pair}:zero/PSNR")
            assert not d.beyond_noise, d.verdict()

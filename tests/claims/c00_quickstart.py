"""Quickstart: the small CNN really restores held-out photos, at every recorded seed and beyond noise."""
REPORT = "00_quickstart"


def check(m, record):
    gain = m["main/mean/PSNR restored"] - m["main/mean/PSNR input"]
    assert gain > 3.0, f"mean PSNR gain on held-out images is only {gain:.2f} dB"
    for name in ("barbara", "coffee", "kodim23", "monarch"):
        assert m[f"main/{name}/PSNR restored"] > m[f"main/{name}/PSNR input"] + 1.0, name
        assert m[f"main/{name}/SSIM restored"] > m[f"main/{name}/SSIM input"], name
    assert m["tiling/barbara/PSNR tiled vs whole"] > 50.0
    assert m["metric_check/max_abs_difference"] < 1e-6
    # every degraded test set is measurably worse than clean
    for key, v in m.items():
        if key.startswith("degradations/") and key.endswith("/PSNR"):
            assert 5.0 < v < 40.0, key


def check_spread(diff):
    """Over the seeds the denoising gain is real, on every test photo."""
    for name in ("mean", "barbara", "coffee", "kodim23", "monarch"):
        d = diff(f"main/{name}/PSNR restored", f"main/{name}/PSNR input")
        assert d.beyond_noise and d.mean > 3.0, d.verdict()

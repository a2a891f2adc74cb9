"""Stripformer (report 02): the CPU profile beats the blurred input on held-out
images; the default config is the reference's; training resumes exactly;
published numbers are labelled."""
import math

REPORT = "02_stripformer_deblur"

#: the smoke profile's margin over the blurred input (mean over the held-out images, dB)
MIN_MEAN_GAIN_DB = 0.03


def _rows(table):
    return {r[table["columns"].index("name") if "name" in table["columns"] else 0]: dict(zip(table["columns"], r))
            for r in table["rows"]}


def check(m, record):
    tables = {t["id"]: t for t in record["tables"]}

    # the CPU profile beats the blurred input: on the mean and on most held-out images
    gain = m["main/mean/PSNR Stripformer"] - m["main/mean/PSNR blurred"]
    assert gain > MIN_MEAN_GAIN_DB, f"mean PSNR gain on held-out images is only {gain:.3f} dB"
    images = [name for name in _rows(tables["main"]) if not name.startswith("mean")]
    assert len(images) >= 4, images
    wins = [n for n in images if m[f"main/{n}/PSNR Stripformer"] > m[f"main/{n}/PSNR blurred"]]
    assert len(wins) > len(images) / 2, f"Stripformer beats the blurred input on only {len(wins)}/{len(images)}"
    assert abs(m["main/mean/gain_dB"] - gain) < 1e-9
    assert abs(m["summary/blurred input/PSNR"] - m["main/mean/PSNR blurred"]) < 1e-9

    # the reference configuration, and the CPU preset
    assert m["parameters/default"] == 19_708_611
    assert m[f"parameters/{record['params']['model_preset']}"] > 0
    if record["params"]["model_preset"] == "small":
        assert m["parameters/small"] == 285_219

    # the interrupted run resumed bit for bit (CPU check inside the notebook)
    assert m["resume_check/bit_identical"] == 1.0

    # the other profile's row is present and says it was not run
    summary = tables["summary"]
    assert any("not run here" in str(r[-1]) for r in summary["rows"])

    # published numbers beside ours, labelled, with their own protocol
    ref = tables["published_reference"]
    assert ref["source"] == "published" and "Stripformer" in ref["citation"]
    assert ref["rows"][0][2:4] == [33.08, 0.962] and "MATLAB" in ref["protocol"]["ssim_variant"]
    rep = tables["published_report"]
    assert rep["source"] == "published" and "report 002" in rep["citation"]
    values = [r[1] for r in rep["rows"]]
    assert values[0] == 8.0 and 9.0 < values[1] < values[2] < 26.0

    # the loss-terms ablation, when it ran: one finite row per arm
    if record["params"]["run_ablations"]:
        rows = tables["ablation_loss_terms"]["rows"]
        assert [r[0] for r in rows] == ["char", "char+edge", "char+edge+contrast"]
        assert all(math.isfinite(r[1]) and 0 < r[2] <= 1 for r in rows)

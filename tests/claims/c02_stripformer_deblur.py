"""Stripformer (report 02), smoke profile, at every recorded seed: the small
model ends above the blurred input on the mean PSNR, on motion blur and on
6 of the 8 held-out images, while its SSIM falls below the input's. Over the
seeds (the findings of configs/02_stripformer_deblur/published.yaml, whose
verdicts check_spread pins): the overall PSNR gain, the GoPro-style gain and
the SSIM losses overall and on motion blur are within noise; the motion-blur
PSNR gain is beyond noise, and so is the SSIM loss on GoPro-style blur; in the
loss-terms ablation the contrastive term lowers PSNR and SSIM beyond noise
while the edge term changes nothing measurable. The default config is the
reference's; training resumes exactly; the published tables are the ones in
published.yaml, labelled, with the report's log statistics computed from the
logged values."""
import math
import re
import statistics

from restore_lib.course.published import load_published

from claims import check_verdicts

REPORT = "02_stripformer_deblur"

#: finding id -> its verdict over the recorded smoke seeds: 0 within noise, +1 / -1 beyond noise (a above / below b)
VERDICTS = {
    "stripformer_vs_blurred_psnr": "0",
    "stripformer_vs_blurred_ssim": "0",
    "motion_blur_psnr": "+",
    "motion_blur_ssim": "0",
    "gopro_blur_psnr": "0",
    "gopro_blur_ssim": "-",
    "edge_term_psnr": "0",
    "edge_term_ssim": "0",
    "contrast_term_psnr": "-",
    "contrast_term_ssim": "-",
}
LOG_NOTE = "Figure 3 log, the 29 logged test PSNRs (dB) in order:"


def _rows(table):
    return {r[table["columns"].index("name") if "name" in table["columns"] else 0]: dict(zip(table["columns"], r))
            for r in table["rows"]}


def _report_log(notes):
    """The course report's 29 logged test PSNRs, from the note that carries them."""
    note = next(n for n in notes if n.startswith(LOG_NOTE))
    return [float(x) for x in re.findall(r"\d+\.\d+", note[len(LOG_NOTE):])]


def check_report_log(rows, notes):
    """The lowest / highest / mean rows of the report table are those of the logged values."""
    log = _report_log(notes)
    assert len(log) == 29, len(log)
    derived = {str(r[0]): r[1] for r in rows}
    assert derived["logged test PSNR of a random test image, epoch 0, steps 0-300: lowest"] == min(log)
    assert derived["same log: highest"] == max(log)
    assert abs(derived["same log: mean of the 29 logged values"] - statistics.fmean(log)) < 1e-9


def check(m, record):
    tables = {t["id"]: t for t in record["tables"]}

    # the CPU profile ends above the blurred input: on the mean, on motion blur and on most held-out images
    gain = m["main/mean/PSNR Stripformer"] - m["main/mean/PSNR blurred"]
    assert gain > 0, f"mean PSNR gain on held-out images is {gain:.3f} dB"
    assert m["main/mean motion_blur/PSNR Stripformer"] > m["main/mean motion_blur/PSNR blurred"]
    # ... while SSIM falls: the short run trades structure for a slightly lower error
    assert m["main/mean/SSIM Stripformer"] < m["main/mean/SSIM blurred"]
    images = [name for name in _rows(tables["main"]) if not name.startswith("mean")]
    assert len(images) >= 4, images
    wins = [n for n in images if m[f"main/{n}/PSNR Stripformer"] > m[f"main/{n}/PSNR blurred"]]
    assert len(wins) >= 6, f"Stripformer beats the blurred input on only {len(wins)}/{len(images)}"
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

    # published numbers beside ours: the tables of published.yaml, labelled, cited, with their own protocol
    pub = load_published(REPORT)
    for t in pub.tables:
        rec = tables[f"published_{t.id}"]
        assert rec["source"] == "published" and rec["citation"] == t.citation, t.id
        assert rec["columns"] == list(t.columns) and rec["rows"] == [list(r) for r in t.rows], t.id
    ref = tables["published_reference"]
    assert "Stripformer" in ref["citation"] and "ECCV 2022" in ref["citation"]
    assert "MATLAB" in ref["protocol"]["description"]
    assert _rows(ref)["Stripformer (19.7 M parameters)"]["PSNR"] == 33.08
    rep = tables["published_report"]
    assert "report 002" in rep["citation"]
    check_report_log(rep["rows"], rep["notes"])
    # no published number is recorded as ours
    assert not any(k.startswith("published_") for k in m)

    # the loss-terms ablation, when it ran: one finite row per arm
    if record["params"]["run_ablations"]:
        rows = tables["ablation_loss_terms"]["rows"]
        assert [r[0] for r in rows] == ["char", "char+edge", "char+edge+contrast"]
        assert all(math.isfinite(r[1]) and 0 < r[2] <= 1 for r in rows)


def check_spread(diff):
    """Every finding of published.yaml has the verdict VERDICTS gives it over the recorded seeds (the
    sentence the notebook generates says the same)."""
    check_verdicts(REPORT, diff, VERDICTS)
    # the report table's derived rows are computed from its logged values (checked on the data itself too)
    rep = load_published(REPORT).table("report")
    check_report_log(rep.rows, rep.notes)

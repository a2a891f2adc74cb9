"""metrics.json: recorder output validates; malformed files fail with the file name."""
import json

import pandas as pd
import pytest

from restore_lib.metrics import MetricSpec
from restore_lib.course.results import MetricsSchemaError, RunRecorder, load_metrics, render_report, validate_metrics


def _recorder(tmp_path):
    rec = RunRecorder("99_demo", "Demo", params={"seed": 1, "sizes": (1, 2)}, out_dir=tmp_path, seed=1,
                      device="cpu", profile="smoke", protocol=MetricSpec())
    rec.set_data("embedded", "abc123", "test: 4 images")
    rec.add_table("main", "Main", pd.DataFrame({"method": ["input", "ours"], "PSNR": [20.0, 25.5],
                                                "SSIM": [0.5, 0.7]}))
    rec.add_table("paper", "Paper", (["method", "PSNR"], [["ours", 30.0]]), source="published",
                  citation="Someone et al. 2024, Tab. 1")
    return rec


def test_recorder_roundtrip(tmp_path):
    rec = _recorder(tmp_path)
    path = rec.save()
    obj = load_metrics(path)
    assert obj["metrics"] == {"main/input/PSNR": 20.0, "main/input/SSIM": 0.5, "main/ours/PSNR": 25.5,
                              "main/ours/SSIM": 0.7}
    assert obj["params"]["sizes"] == [1, 2]
    assert obj["provenance"]["data"]["hash"] == "abc123"
    md = (tmp_path / "table.md").read_text()
    assert "Published figures" in md and "Someone et al. 2024" in md and "25.50" in md


def test_published_table_needs_citation(tmp_path):
    rec = _recorder(tmp_path)
    with pytest.raises(ValueError, match="citation"):
        rec.add_table("p2", "P2", (["a"], [[1]]), source="published")
    with pytest.raises(ValueError, match="already used"):
        rec.add_table("main", "dup", (["a"], [[1]]))


@pytest.mark.parametrize("mutate,needle", [
    (lambda o: o.pop("provenance"), "missing field 'provenance'"),
    (lambda o: o.update(schema_version=7), "schema_version 7"),
    (lambda o: o["metrics"].update(x="high"), "metrics['x'] must be a number"),
    (lambda o: o["tables"][0]["rows"].append([1]), "cells for 3 columns"),
    (lambda o: o["provenance"].pop("seed"), "provenance lacks 'seed'"),
    (lambda o: o["tables"][1].pop("citation"), "no citation"),
])
def test_invalid_files_are_named(tmp_path, mutate, needle):
    obj = json.loads(_recorder(tmp_path).save().read_text())
    mutate(obj)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    with pytest.raises(MetricsSchemaError) as e:
        load_metrics(bad)
    assert str(bad) in str(e.value) and needle in str(e.value)


def test_not_json_and_missing(tmp_path):
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(MetricsSchemaError, match="not valid JSON"):
        load_metrics(tmp_path / "x.json")
    with pytest.raises(MetricsSchemaError, match="not found"):
        load_metrics(tmp_path / "none.json")
    with pytest.raises(MetricsSchemaError, match="JSON object"):
        validate_metrics([], "list.json")


def test_render_report_labels_provenance(tmp_path):
    obj = _recorder(tmp_path).to_dict()
    md = render_report(obj)
    assert "profile **smoke**" in md and "seed 1" in md and "Our run" in md


def test_git_state_recorded_at_the_start_of_a_run(monkeypatch):
    from restore_lib.course import results

    monkeypatch.setenv(results.GIT_STATE_ENV, '{"commit": "abc", "dirty": false}')
    assert results.run_git_state() == {"commit": "abc", "dirty": False}
    monkeypatch.setenv(results.GIT_STATE_ENV, '{"commit": "abc"}')
    with pytest.raises(ValueError, match="RESTORE_GIT_STATE"):
        results.run_git_state()
    monkeypatch.delenv(results.GIT_STATE_ENV)
    assert set(results.run_git_state()) == {"commit", "dirty"}


def test_failed_run_leaves_the_published_results_alone(tmp_path):
    out = tmp_path / "99_demo"
    first = _recorder(out)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    first.add_figure(fig, "curves")
    first.add_figure(fig, "old_only")
    first.save()
    published = {p.name: p.read_bytes() for p in (out / "figures").iterdir()}
    metrics = (out / "metrics.json").read_bytes()

    # a second run that draws figures, writes a file, then dies before save(): nothing published changes
    second = _recorder(out)
    fig2 = plt.figure(figsize=(2, 2))
    second.add_figure(fig2, "curves")
    (second.out_dir / "pred.npz").write_bytes(b"partial")
    assert {p.name: p.read_bytes() for p in (out / "figures").iterdir()} == published
    assert (out / "metrics.json").read_bytes() == metrics and not (out / "pred.npz").exists()

    # the next run starts clean, and its save() publishes exactly its own files
    third = _recorder(out)
    assert not third.out_dir.exists()
    third.add_figure(fig2, "curves")
    (third.out_dir / "pred.npz").write_bytes(b"whole")
    path = third.save()
    assert third.out_dir == out and path == out / "metrics.json"
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["curves.png"]   # the old run's extra figure is gone
    assert (out / "figures" / "curves.png").read_bytes() != published["curves.png"]
    assert (out / "pred.npz").read_bytes() == b"whole"
    assert not any(p.name.endswith(".staging") for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="already saved"):
        third.save()


def test_published_files_are_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = _recorder(tmp_path / "r").save()
        for p in (path, path.parent / "table.md"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    finally:
        os.umask(old)


@pytest.mark.parametrize("text, needle", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"x": ' + "9" * 5000 + "}", "unreadable number"),
])
def test_hostile_metrics_files_get_a_named_error(tmp_path, text, needle):
    bad = tmp_path / "metrics.json"
    bad.write_text(text)
    with pytest.raises(MetricsSchemaError, match=needle) as e:
        load_metrics(bad)
    assert str(bad) in str(e.value)


def test_huge_or_mistyped_metrics_files_are_refused(tmp_path):
    path = _recorder(tmp_path).save()
    with pytest.raises(MetricsSchemaError, match="over the limit of 100 bytes"):
        load_metrics(path, max_bytes=100)
    obj = json.loads(path.read_text())
    obj["provenance"]["data"] = "embedded"
    obj["metrics"]["main/ours/PSNR"] = 10 ** 30
    path.write_text(json.dumps(obj))
    with pytest.raises(MetricsSchemaError) as e:
        load_metrics(path)
    assert "provenance.data must be an object" in str(e.value) and "too large to be a measurement" in str(e.value)
    for big, needle in ((10 ** 400, "an integer with 401 digits"), ("1e400", "1e400 is too large for a float")):
        path.write_text(json.dumps(obj).replace("1000000000000000000000000000000", str(big)))
        with pytest.raises(MetricsSchemaError, match=needle):
            load_metrics(path)

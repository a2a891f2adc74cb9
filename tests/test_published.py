"""Published figures as data (configs/<notebook>/published.yaml): every committed file loads, cites its
source and maps our cells to metrics that exist; the side-by-side table puts each value where the file
says; bad files are refused by name; runs on different data are never mixed in one table."""
import json
import math

import pytest
import yaml

from restore_lib.course.published import (PublishedError, add_published, beside, beside_markdown, load_published,
                                          published_path)
from restore_lib.course.reproduce import list_notebooks
from restore_lib.course.results import RunRecorder, load_metrics
from restore_lib.course.runner import results_dir_for

REPORTS = [nb.stem for nb in list_notebooks() if nb.stem != "00_quickstart"]


def _record(report):
    return load_metrics(results_dir_for(report, "smoke") / "metrics.json")


def _cell(record, key):
    """The cell of ``record``'s tables that metric ``key`` ("<table>/<row>/<column>") names, or KeyError."""
    tid, rest = key.split("/", 1)
    table = next(t for t in record["tables"] if t["id"] == tid)
    for col in table["columns"]:
        if rest.endswith("/" + col):
            row = rest[:-len(col) - 1]
            for r in table["rows"]:
                if str(r[0]) == row:
                    return r[table["columns"].index(col)]
    raise KeyError(key)


@pytest.mark.parametrize("report", REPORTS)
def test_every_report_notebook_has_published_figures_that_load(report):
    pub = load_published(report)
    assert pub.tables, f"{pub.path}: no tables"
    for t in pub.tables:
        assert t.source["document"].strip() and t.citation


@pytest.mark.parametrize("report", REPORTS)
def test_every_mapped_cell_names_a_metric_of_the_committed_runs(report):
    """A mapping to a key no run writes would silently show an empty cell forever. A key may be absent only
    where the run's own table holds text there (e.g. LPIPS "n/a (no trunk weights)")."""
    pub = load_published(report)
    records = {report: _record(report)}
    for t in pub.tables:
        if not t.ours:
            continue
        keys = [k for cols in t.cells().values() for k in cols.values()]
        for where in (t.ours.get("extra_rows") or {}).values():
            keys += list(where.values()) if isinstance(where, dict) else \
                [f"{where}/{c}" for c in (t.ours.get("columns") or {}).values()]
        keys += [k if who == "this" else f"{who}:{k}" for who, k in (t.ours.get("same_data") or {}).items()]
        for key in keys:
            other, _, plain = key.rpartition(":") if ":" in key.split("/")[0] else ("", "", key)
            rec = records.setdefault(other or report, _record(other or report))
            if plain not in rec["metrics"]:
                assert isinstance(_cell(rec, plain), str), f"{pub.path}: table {t.id!r} maps {key!r}, which is " \
                                                           f"not a metric of results/{other or report}"


def _write(tmp_path, report, doc):
    path = published_path(report, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


TABLE = {"id": "t", "title": "Paper table", "source": {"document": "Paper", "section": "4", "table": "Table 2"},
         "protocol": "Y, crop 4", "columns": ["method", "Set5 PSNR", "Set5 SSIM", "Set14 PSNR"],
         "rows": [["A", 30.0, 0.9, 28.0], ["B", 31.0, 0.91, 29.0]],
         "ours": {"data": "stand-in photos", "rows": {"A": "main/a", "B": "other_nb:main/b"},
                  "columns": {"Set5 PSNR": "PSNR"}, "cells": {"A": {"Set14 PSNR": "main/a/PSNR14"}},
                  "extra_rows": {"bicubic": "main/bic"}}}


def _other(tmp_path, metrics):
    d = tmp_path / "results" / "other_nb"
    d.mkdir(parents=True)
    rec = RunRecorder("other_nb", "x", params={}, out_dir=d, seed=3, device="cpu", profile="smoke")
    for k, v in metrics.items():
        rec.set_metric(k, v)
    rec.save()


def test_beside_places_our_values_in_the_report_layout(tmp_path):
    _write(tmp_path, "nb", {"schema_version": 1, "tables": [TABLE]})
    _other(tmp_path, {"main/b/PSNR": 26.5})
    table = load_published("nb", tmp_path).table("t")
    frame, others = beside(table, {"main/a/PSNR": 25.0, "main/a/PSNR14": 24.0, "main/bic/PSNR": 24.5},
                           root=tmp_path)
    assert list(frame.columns) == ["method", "Set5 PSNR · published", "Set5 PSNR · ours (smoke)",
                                   "Set5 SSIM · published", "Set14 PSNR · published", "Set14 PSNR · ours (smoke)"]
    rows = {r[0]: r for r in frame.itertuples(index=False, name=None)}
    assert rows["A"][1:] == (30.0, 25.0, 0.9, 28.0, 24.0)
    assert rows["B"][1:3] == (31.0, 26.5) and math.isnan(rows["B"][5])       # B has no Set14 cell of ours
    assert rows["bicubic (not in the report)"][2] == 24.5 and math.isnan(rows["bicubic (not in the report)"][1])
    assert set(others) == {"other_nb"}
    text = beside_markdown(table, {"main/a/PSNR": 25.0}, root=tmp_path)
    assert "Paper, 4, Table 2" in text and "stand-in photos" in text and "other_nb" in text and "seed 3" in text


def test_runs_on_different_data_are_refused(tmp_path):
    doc = dict(TABLE, ours=dict(TABLE["ours"], same_data={"this": "main/in/PSNR", "other_nb": "main/in/PSNR"}))
    _write(tmp_path, "nb", {"schema_version": 1, "tables": [doc]})
    _other(tmp_path, {"main/b/PSNR": 26.5, "main/in/PSNR": 23.0})
    table = load_published("nb", tmp_path).table("t")
    beside(table, {"main/in/PSNR": 23.0}, root=tmp_path)                    # same inputs: fine
    with pytest.raises(PublishedError, match="degraded inputs differ.*this 23.5000, other_nb 23.0000"):
        beside(table, {"main/in/PSNR": 23.5}, root=tmp_path)


def test_a_missing_other_record_leaves_its_cells_empty_and_says_so(tmp_path):
    """E.g. a gpu run of notebook 03 before notebook 04 has a gpu run: the table still shows, without 04's rows."""
    doc = dict(TABLE, ours=dict(TABLE["ours"], same_data={"this": "main/in/PSNR", "other_nb": "main/in/PSNR"}))
    _write(tmp_path, "nb", {"schema_version": 1, "tables": [doc]})
    table = load_published("nb", tmp_path).table("t")
    frame, others = beside(table, {"main/in/PSNR": 23.0, "main/a/PSNR": 25.0}, root=tmp_path)
    assert others == {"other_nb": None}
    rows = {r[0]: r for r in frame.itertuples(index=False, name=None)}
    assert rows["A"][2] == 25.0 and math.isnan(rows["B"][2])
    text = beside_markdown(table, {}, profile="gpu", root=tmp_path)
    assert "rows from notebook other_nb: empty, it has no recorded gpu run" in text


def test_an_unreadable_other_record_is_named(tmp_path):
    _write(tmp_path, "nb", {"schema_version": 1, "tables": [TABLE]})
    bad = tmp_path / "results" / "other_nb" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(PublishedError, match="other_nb/metrics.json: needed for a row.*re-run notebook other_nb"):
        beside(load_published("nb", tmp_path).table("t"), {}, root=tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(extra=1), "unknown field 'extra'"),
    (lambda t: t.update(source={"section": "4"}), "source must be a mapping with a 'document'"),
    (lambda t: t["rows"].append(["A", 1.0, 0.5, 2.0]), "row labels .* repeat: \\['A'\\]"),
    (lambda t: t["rows"].append(["C", 1.0]), "row 2 has 2 cells, the columns are 4"),
    (lambda t: t["ours"].update(rows={"Z": "main/z"}), "ours names row 'Z'"),
    (lambda t: t["ours"].update(columns={"Urban100": "PSNR"}), "ours names column 'Urban100'"),
    (lambda t: t["ours"].pop("data"), "ours.data must say what we measured on"),
    (lambda t: t.pop("source"), "missing field 'source'"),
])
def test_bad_files_are_refused_by_name(tmp_path, change, message):
    table = json.loads(json.dumps(TABLE))
    change(table)
    path = _write(tmp_path, "nb", {"schema_version": 1, "tables": [table]})
    with pytest.raises(PublishedError, match=message) as e:
        load_published("nb", tmp_path)
    assert str(path) in str(e.value)


def test_wrong_version_and_duplicate_ids_are_refused(tmp_path):
    _write(tmp_path, "nb", {"schema_version": 2, "tables": [TABLE, TABLE]})
    with pytest.raises(PublishedError, match="schema_version must be 1.*table id 't' is used twice"):
        load_published("nb", tmp_path)


def test_add_published_records_cited_published_tables(tmp_path):
    _write(tmp_path, "nb", {"schema_version": 1, "tables": [TABLE]})
    rec = RunRecorder("nb", "x", params={}, out_dir=tmp_path / "out", seed=0, device="cpu", profile="smoke")
    add_published(rec, root=tmp_path)
    (t,) = rec.tables
    assert t["id"] == "published_t" and t["source"] == "published" and t["citation"] == "Paper, 4, Table 2"
    assert t["rows"] == TABLE["rows"] and not rec.metrics                  # published values never become ours


def test_committed_notebooks_show_every_published_table():
    """Published figures come from the YAML files: no report notebook builds a published table in code."""
    for nb in list_notebooks():
        text = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert 'source="published"' not in text, f"{nb.name} still builds a published table in a code cell"
        if nb.stem in REPORTS:
            assert "show_published(rec" in text, f"{nb.name} does not show its published tables"

"""Correctness of the benchmark code itself (``benchmarks/``). Nothing here is
timed: the timers run on a fake clock, measurements are checked for presence
and consistency, counts against hand counts and the reference measurements of the official
code in tests/data/reference_facts.json."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from benchmarks import hardware, specs, tables
from benchmarks.fastpaths import fastpath_memory, measure_fastpath
from benchmarks.isolate import run_isolated
from benchmarks.measure import MemoryProbe, count_flops, time_calls, time_interleaved
from benchmarks.run import compute_rows, model_rows, render_markdown
from benchmarks.specs import CASES, Case, make_inputs, select_cases, training_loss
from benchmarks.tiled import buffer_bytes, count_tiles, synthetic_image
from benchmarks.worker import VARIANTS, BenchConfig, build, count_case, measure_case
from restore_lib.archs._common import attention
from restore_lib.data.patches import tiled_inference
from restore_lib.models import build_model, list_models, model_presets

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- MAC counting

def _tiny_net() -> nn.Module:
    # conv 3->8 (3x3), depthwise 8 (3x3, groups=8), pointwise 8->4 (1x1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                         nn.Conv2d(8, 4, 1))


HW = 10 * 12
FWD_MACS = 8 * 3 * 9 * HW + 8 * 1 * 9 * HW + 4 * 8 * 1 * HW   # 25,920 + 8,640 + 3,840


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_forward_macs_match_hand_count(device):
    net = _tiny_net().to(device)
    x = torch.zeros(1, 3, 10, 12, device=device)
    assert count_flops(net, (x,)) == 2 * FWD_MACS == 2 * 38_400


def test_backward_flops_of_grouped_conv_match_hand_count():
    # the input needs no gradient: the first conv computes only its weight gradient;
    # the others compute input and weight gradients, each as many MACs as their forward.
    net = _tiny_net().to("meta")
    x = torch.zeros(1, 3, 10, 12, device="meta")
    bwd_macs = 8 * 3 * 9 * HW + 2 * (8 * 1 * 9 * HW) + 2 * (4 * 8 * HW)
    got = count_flops(net, (x,), backward=True, loss_fn=lambda y: y.mean())
    assert got == 2 * (FWD_MACS + bwd_macs)


def test_attention_is_counted_as_two_matmuls():
    q = torch.zeros(2, 3, 16, 8, device="meta")   # (batch, heads, tokens, dim)

    class Att(nn.Module):
        def forward(self, t):
            return attention(t, t, t)

    assert count_flops(Att(), (q,)) == 2 * (2 * 2 * 3 * 16 * 16 * 8)


@pytest.mark.parametrize("key, ref_index", [("srgan_discriminator:default", 0), ("srresnet:default", 1)])
def test_count_case_matches_reference_measurement(key, ref_index):
    """Our meta-device count against the official code's count at the
    reference input (tests/data/reference_facts.json); the spec quotes the same figures."""
    case = next(c for c in CASES if c.key == key)
    ref = case.references[ref_index]
    fact = json.loads((Path(__file__).parent / "data" / "reference_facts.json").read_text())[key.replace(":", "/")]
    h, w = ref.input_hw
    assert (case.reference_params, ref.gmacs) == (fact["params"], fact["gmacs_torch"][f"{h}x{w}"])
    out = count_case(case, BenchConfig())
    assert out["params"] == fact["params"]
    ours = out["fwd_flops_at"][ref.input_hw] / 2e9
    assert ours == pytest.approx(fact["gmacs_torch"][f"{h}x{w}"], rel=0.01)
    assert out["train_flops"] / out["fwd_flops"] == pytest.approx(3.0, rel=0.02)


# --------------------------------------------------------------------------- timing (fake clock)

class FakeClock:
    """Each call advances by the next duration when a timed call ends."""

    def __init__(self, durations):
        self.durations, self.t, self.calls = list(durations), 0.0, 0

    def __call__(self):
        self.calls += 1
        if self.calls % 2 == 0:           # end of a timed call
            self.t += self.durations.pop(0)
        return self.t


def test_time_calls_median_min_max_and_warmup():
    calls = []
    t = time_calls(lambda: calls.append(1), warmup=2, repeats=5, clock=FakeClock([5, 1, 3, 2, 4]))
    assert (t.median_s, t.min_s, t.max_s, t.n) == (3, 1, 5, 5)
    assert len(calls) == 7


def test_time_calls_budget_stops_after_min_repeats():
    t = time_calls(lambda: None, warmup=0, repeats=10, min_repeats=2, budget_s=15, clock=FakeClock([10] * 10))
    assert t.n == 2


def test_time_interleaved_alternates():
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = time_interleaved(fns, warmup=1, repeats=2, min_repeats=1, clock=FakeClock([1, 2, 3, 4]))
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert times["a"].median_s == 2 and times["b"].median_s == 3


# --------------------------------------------------------------------------- memory

def test_memory_probe_sees_an_allocation():
    probe = MemoryProbe("cpu")
    assert probe.baseline_mb > 0
    probe.reset()
    before = probe.peak_mb()
    big = torch.ones(300 * 2**20 // 4)   # 300 MiB, touched
    peak = probe.peak_mb()
    del big
    assert peak - before > 250
    if probe.reset():
        assert probe.peak_mb() < peak - 200


# --------------------------------------------------------------------------- tables

def test_fmt_cells():
    assert tables.fmt(None) == "-"
    assert tables.fmt(1234567) == "1,234,567"
    assert tables.fmt(123.456) == "123"
    assert tables.fmt(0.012345) == "0.0123"
    assert tables.fmt(1.5) == "1.50"
    assert tables.fmt(float("nan")) == "nan"


def test_csv_and_markdown_writer(tmp_path):
    rows = [{"a": 1, "b": "x|y"}, {"a": None, "c": 2.5}]
    path = tables.write_csv(tmp_path / "t.csv", rows)
    back = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["a"] for r in back] == ["1", ""] and back[1]["c"] == "2.5" and back[0]["b"] == "x|y"
    md = tables.markdown_table(rows, [("a", "A"), ("b", "B"), ("c", "C")])
    lines = md.strip().splitlines()
    assert lines[0] == "| A | B | C |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| 1 | x\\|y | - |" and lines[3] == "| - | - | 2.50 |"
    tables.write_markdown(tmp_path / "t.md", md)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md"]   # no temp files left


# --------------------------------------------------------------------------- MFU

def test_peak_lookup_and_mfu():
    assert hardware.lookup_peak("NVIDIA H100 80GB HBM3", "bf16")[0] == 989.4
    assert hardware.lookup_peak("NVIDIA H200", "bf16")[0] == 989.4
    assert hardware.lookup_peak("NVIDIA H100 PCIe", "bf16")[0] == 756.0
    assert hardware.lookup_peak("NVIDIA A100-SXM4-80GB", "tf32")[0] == 156.0
    assert hardware.lookup_peak("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "bf16")[0] is None
    assert hardware.lookup_peak("Tesla K80", "bf16")[0] is None
    assert hardware.mfu(1e12, 100.0, 1000.0) == pytest.approx(0.1)
    assert hardware.format_mfu(0.1234, 989.4) == "12.3%"
    assert hardware.format_mfu(None, None) == hardware.UNKNOWN_PEAK == "n/a (unknown peak)"
    with pytest.raises(ValueError):
        hardware.lookup_peak("NVIDIA H100", "fp8")


# --------------------------------------------------------------------------- cases and inputs

def test_every_registered_model_has_a_case_and_presets_exist():
    assert specs.check_cases_cover_registry() == []
    assert {c.model for c in CASES} == set(list_models())
    for c in CASES:
        assert c.preset in model_presets(c.model), c.key
        assert c.kind in specs.KINDS
        assert specs.quick_preset(c) in model_presets(c.model)
        for ref in c.references:
            assert ref.source in ("published", "reference measurement") and ref.citation
    keys = {c.key for c in CASES}
    assert {"nafnet:width64", "swinir:lightweight_x4", "fsrcnn:default", "diffir_s2:default",
            "diffir_s2:sr", "diffir_s1:sr"} <= keys


def test_select_cases():
    assert [c.key for c in select_cases(["nafnet"])] == ["nafnet:default", "nafnet:width64"]
    assert [c.key for c in select_cases(["nafnet:sidd_width32"])] == ["nafnet:sidd_width32"]
    with pytest.raises(ValueError, match="no_such_model"):
        select_cases(["no_such_model"])
    with pytest.raises(ValueError, match="no preset"):
        select_cases(["nafnet:huge"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_inputs_drive_every_case(case):
    """Each case's input spec fits its model (quick preset): inference and one training step."""
    torch.manual_seed(0)
    model = build_model(case.model, specs.quick_preset(case))
    hw = specs.input_hw(case, model, image_size=16, sr_size=8)
    model.eval()
    args, kwargs = make_inputs(case, model, 1, hw)
    with torch.no_grad():
        out = model(*args, **kwargs)
    first = specs.output_tensors(out)[0]
    if case.model != "srgan_discriminator":
        assert first.shape[-2:] == (hw[0] * model.scale, hw[1] * model.scale)
    model.train()
    args, kwargs = make_inputs(case, model, 2, hw, train=True)
    loss = training_loss(model(*args, **kwargs))
    assert loss.requires_grad and loss.dim() == 0
    if case.kind != "image":   # the models with extra inputs: the gradient reaches the weights
        loss.backward()
        assert any(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------- measurements (in process)

QUICK = BenchConfig(quick=True, image_size=16, sr_size=8, batches=(1, 2), warmup=0, repeats=1, min_repeats=1,
                    budget_s=None, threads=1)


def test_measure_case_rows():
    cfg = dataclasses.replace(QUICK, variants=("bf16", "channels_last", "compile", "all"), compile_at=(99,))
    res = measure_case(Case("baseline_cnn", "tiny"), cfg)
    assert [r["batch"] for r in res["rows"]] == [1, 2]
    for r in res["rows"]:
        assert not [k for k in r if k.endswith("_error")], r
        for key in ("fwd_median_ms", "fwd_img_s", "train_img_s", "fwd_peak_mb", "train_peak_mb",
                    "fwd_bf16_median_ms", "train_channels_last_img_s"):
            assert r[key] > 0, key
        assert r["fwd_min_ms"] <= r["fwd_median_ms"] <= r["fwd_max_ms"]
        assert not [k for k in r if "compile" in k or "_all_" in k]   # compile only at batch 99
    assert res["memory_kind"] == "rss" and res["baseline_mb"] > 0


def test_fastpath_row_reports_equality_and_fused_flops():
    row = measure_fastpath(Case("swinir", "small"), QUICK)
    assert row["equal_within_tol"] and row["max_abs_diff"] < 1e-4
    # the fused function is called once per window-attention layer of the model
    from restore_lib.archs.swinir import WindowAttention
    model = build(Case("swinir", "small"), QUICK.preset_for(Case("swinir", "small")), QUICK.seed)
    assert row["sdpa_calls"] == sum(isinstance(m, WindowAttention) for m in model.modules()) > 0
    assert row["fwd_speedup"] > 0
    mem = fastpath_memory(Case("swinir", "small"), QUICK, sdpa=False)
    assert mem["memory_kind"] == "rss" and mem["peak_mb"] > 0


def test_rows_and_markdown_carry_provenance_and_mfu():
    info = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "torch": "2.x", "threads": 16,
            "dtype": "float32", "git_commit": "abc123", "git_dirty": False, "date": "2026-01-01T00:00:00+00:00",
            "command": "python -m benchmarks.run", "cuda": "12", "cudnn_allow_tf32": True}
    peaks = {"fp32": hardware.lookup_peak(info["device_name"], "tf32"),
             "bf16": hardware.lookup_peak(info["device_name"], "bf16")}
    case = next(c for c in CASES if c.key == "nafnet:default")
    count = {"params": 17_111_907, "preset": "default", "scale": 1, "input_hw": (256, 256),
             "fwd_flops": int(2 * 15.96e9), "train_flops": int(6 * 15.96e9),
             "fwd_flops_at": {(256, 256): int(2 * 15.96e9)}, "count_note": ""}
    measured = {1: {"rows": [{"batch": 1, "fwd_median_ms": 10.0, "train_img_s": 100.0, "train_bf16_img_s": 200.0}],
                    "memory_kind": "cuda_max_allocated", "baseline_mb": 0.0, "memory_resettable": True,
                    "preset": "default", "input_hw": (256, 256)},
                16: "worker killed by signal SIGKILL (killed: probably out of memory)"}
    rows = model_rows(case, count, measured, info=info, peaks=peaks, variants=("bf16",))
    assert [r["batch"] for r in rows] == [1, 16]
    assert rows[0]["errors"] == "" and rows[1]["errors"].startswith("measure: worker killed")
    assert rows[1]["mfu_text"] == "n/a" and rows[1]["params"] == 17_111_907
    assert rows[0]["mfu"] == pytest.approx(6 * 15.96e9 * 100 / 494.7e12)
    assert rows[0]["mfu_bf16_text"] == f"{100 * 6 * 15.96e9 * 200 / 989.4e12:.1f}%"
    assert all(rows[0][k] == info[k] for k in ("device", "torch", "threads", "dtype", "git_commit", "command"))
    crows = compute_rows(case, count, quick=False, info=info)
    assert crows[0]["params_match"] is True and crows[0]["ours_over_ref"] == pytest.approx(1.0)
    assert {r["ref_source"] for r in crows} == {"reference measurement"}
    cfg = BenchConfig(device="cuda", variants=("bf16",), batches=(1,))
    md = render_markdown(info, cfg, rows, crows, [], peaks)
    for text in ("NVIDIA H100 80GB HBM3", "torch 2.x", "16 threads", "dtype float32", "abc123", "2026-01-01",
                 "python -m benchmarks.run", "MFU bf16", "reference measurement"):
        assert text in md, text


# --------------------------------------------------------------------------- tiled helpers

def test_tile_count_and_buffers_match_tiled_inference():
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    img = synthetic_image(40)
    assert img.shape == (3, 40, 40) and 0 <= img.min() and img.max() <= 1
    assert torch.equal(img, synthetic_image(40))
    out = tiled_inference(model, img, tile=16, overlap=4, scale=2, multiple=8, batch_size=1)
    assert len(calls) == count_tiles(40, 16, 4, 8)
    assert torch.allclose(out, img.repeat_interleave(2, -1).repeat_interleave(2, -2), atol=1e-6)
    assert buffer_bytes(3, 1024, 4) == 4 * (3 * 1024**2 + 2 * 3 * 4096**2 + 4096**2)


# --------------------------------------------------------------------------- isolation

def _child_ok(x):
    return {"twice": 2 * x}


def _child_raises():
    raise ValueError("bad thing in the child")


def _child_killed():
    os.kill(os.getpid(), signal.SIGKILL)


def _child_sleeps():
    time.sleep(30)


def _child_reports_then_dies(report):
    report({"phase": 1})
    report({"phase": 2})
    os.kill(os.getpid(), signal.SIGKILL)


def test_run_isolated_reports_results_and_failures():
    ok = run_isolated(_child_ok, {"x": 21}, timeout_s=60)
    assert ok.ok and ok.value == {"twice": 42}
    err = run_isolated(_child_raises, timeout_s=60)
    assert not err.ok and "ValueError: bad thing in the child" in err.error
    killed = run_isolated(_child_killed, timeout_s=60)
    assert not killed.ok and "SIGKILL" in killed.error and "out of memory" in killed.error
    slow = run_isolated(_child_sleeps, timeout_s=1)
    assert not slow.ok and "timed out" in slow.error and slow.value is None
    part = run_isolated(_child_reports_then_dies, timeout_s=60, partial=True)
    assert not part.ok and part.value == {"phase": 2} and "SIGKILL" in part.error


# --------------------------------------------------------------------------- CUDA (skipped without a GPU)

@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_variants_and_memory():
    cfg = dataclasses.replace(QUICK, device="cuda", variants=VARIANTS, threads=None, batches=(2,))
    res = measure_case(Case("nafnet", "small"), cfg)
    row = res["rows"][0]
    assert not [k for k in row if k.endswith("_error")], row
    assert res["memory_kind"] == "cuda_max_allocated" and row["train_peak_mb"] > row["fwd_peak_mb"] > 0
    for v in VARIANTS:
        assert row[f"fwd_{v}_median_ms"] > 0 and row[f"train_{v}_img_s"] > 0, v
    assert row["train_compile_first_call_s"] > 0


@pytest.mark.gpu
@pytest.mark.parametrize("bf16", [False, True])
def test_cuda_fastpath_equality(bf16):
    cfg = dataclasses.replace(QUICK, device="cuda", threads=None)
    row = measure_fastpath(Case("swinir", "small"), cfg, bf16=bf16)
    assert row["equal_within_tol"], row["max_abs_diff"]


# --------------------------------------------------------------------------- CLI end to end

@pytest.mark.slow
def test_cli_quick_writes_tables(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--models", "fsrcnn", "--no-fastpaths",
           "--out", str(tmp_path), "--repeats", "1", "--min-repeats", "1", "--warmup", "0", "--batch-train", "1",
           "--strict"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["benchmarks_cpu_quick.md", "compute_cpu_quick.csv", "models_cpu_quick.csv",
                     "provenance_cpu_quick.json"]
    rows = list(csv.DictReader((tmp_path / "models_cpu_quick.csv").open()))
    assert [(r["key"], r["batch"]) for r in rows] == [("fsrcnn:default", "1")]
    for r in rows:
        assert float(r["fwd_median_ms"]) > 0 and float(r["train_img_s"]) > 0 and not r["errors"]
        assert float(r["fwd_peak_mb"]) >= float(r["baseline_mb"]) > 0
        assert r["device"] == "cpu" and r["torch"] == torch.__version__ and r["command"].startswith("python -m")
        # fsrcnn small (d=32, s=5, m=1) on a 16x16 Y input, hand count: 5x5 conv, 1x1 shrink, one 3x3 map,
        # 1x1 expand, and a 9x9 x4 transposed conv evaluated at every input pixel
        macs = 16 * 16 * (32 * 1 * 25 + 5 * 32 + 5 * 5 * 9 + 32 * 5 + 1 * 32 * 81)
        assert float(r["gmacs"]) * 1e9 == pytest.approx(macs)
    md = (tmp_path / "benchmarks_cpu_quick.md").read_text()
    assert "*Provenance:*" in md and "fsrcnn" in md


def test_variant_speedups_are_ratios_to_the_fp32_eager_step_of_the_same_row():
    from benchmarks.run import variant_speedups

    row = {"train_img_s": 10.0, "train_bf16_img_s": 25.0, "train_compile_img_s": 5.0}
    assert variant_speedups(row, ["bf16", "compile", "channels_last"]) == {
        "train_bf16_speedup": "2.50x", "train_compile_speedup": "0.50x"}
    assert variant_speedups({"train_bf16_img_s": 25.0}, ["bf16"]) == {}


def test_channels_last_variant_converts_a_model_with_a_5d_parameter_and_back():
    from benchmarks.worker import to_contiguous, variant_setup
    from restore_lib.models import build_model

    model = build_model("promptir", "small")        # its prompt components are a 5-D parameter
    x = torch.rand(1, 3, 16, 16)
    ref = model(x)
    fn, _, cl = variant_setup(model, "channels_last", "cpu")
    assert cl and model.patch_embed.proj.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fn(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-5)
    to_contiguous(model)
    assert all(p.is_contiguous() for p in model.parameters())

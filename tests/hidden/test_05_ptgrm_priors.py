"""Hidden test for notebook 05's exercise: the PTG-RM output formula
(``ptgrm_fuse``) against restore_lib's implementation (PTGRM's decoder output
captured with a hook, and restore_lib.recipes.ptgrm.fuse)."""
import pytest
import torch

from restore_lib.archs.ptgrm import PTGRM
from restore_lib.course.assignments import run_student_cells, student_notebook
from restore_lib.recipes.ptgrm import fuse


@pytest.fixture(scope="module")
def ptgrm_fuse():
    return run_student_cells(student_notebook("05_ptgrm_priors"), "ptgrm_fusion")["ptgrm_fuse"]


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_fuse_reproduces_the_modules_output(ptgrm_fuse, mode):
    torch.manual_seed(1)
    module = PTGRM(prior_dim=16, nf=4, num_blocks=1, output_mode=mode).eval()
    initial = torch.rand(2, 3, 20, 28) * 1.4 - 0.2  # F may overshoot [0, 1]: the code's clamp matters
    degraded, prior = torch.rand(2, 3, 20, 28), torch.randn(2, 16)
    maps = {}
    hook = module.conv_last3.register_forward_hook(lambda m, i, o: maps.setdefault("out", o))
    with torch.no_grad():
        expected = module(initial, degraded, prior)
    hook.remove()
    i_m, i_r = (None, maps["out"]) if mode == "code" else maps["out"].chunk(2, dim=1)
    got = ptgrm_fuse(initial, degraded, i_m, i_r, mode)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-6)


def test_paper_formula_on_arbitrary_maps(ptgrm_fuse):
    g = torch.Generator().manual_seed(2)
    initial, degraded = torch.rand(1, 3, 5, 7, generator=g), torch.rand(1, 3, 5, 7, generator=g)
    i_m, i_r = torch.randn(1, 3, 5, 7, generator=g), 0.1 * torch.randn(1, 3, 5, 7, generator=g)
    assert torch.allclose(ptgrm_fuse(initial, degraded, i_m, i_r, "paper"), fuse(initial, degraded, i_m, i_r, "paper"))
    # I_m = 1 keeps F's output, I_m = 0 falls back to the degraded input
    zero = torch.zeros_like(i_r)
    assert torch.allclose(ptgrm_fuse(initial, degraded, torch.ones_like(i_m), zero, "paper"), initial)
    assert torch.allclose(ptgrm_fuse(initial, degraded, torch.zeros_like(i_m), zero, "paper"), degraded)

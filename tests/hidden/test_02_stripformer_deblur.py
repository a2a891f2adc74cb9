"""Hidden tests for notebook 02 (Stripformer): the students' Charbonnier and
edge losses and the intra-strip reshape, against restore_lib's implementations."""
import pytest
import torch

from restore_lib.archs.stripformer import (IntraStripBlock, from_horizontal_strips, from_vertical_strips,
                                          to_horizontal_strips, to_vertical_strips)
from restore_lib.course.assignments import run_student_cells, student_notebook
from restore_lib.losses import CharbonnierLoss, EdgeLoss

NOTEBOOK = "02_stripformer_deblur"


@pytest.fixture(scope="module")
def losses():
    return run_student_cells(student_notebook(NOTEBOOK), "charbonnier_edge")


@pytest.fixture(scope="module")
def strips():
    return run_student_cells(student_notebook(NOTEBOOK), "strip_reshape")


def _pair(shape=(2, 3, 20, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    return a, (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_charbonnier_matches_library(losses, eps):
    a, b = _pair()
    assert float(losses["charbonnier"](a, b, eps=eps)) == pytest.approx(float(CharbonnierLoss(eps)(a, b)), rel=1e-6)
    assert float(losses["charbonnier"](a, a)) == pytest.approx(1e-3, rel=1e-6)   # default eps = 1e-3


@pytest.mark.parametrize("shape", [(2, 3, 20, 28), (1, 3, 17, 9)])
def test_laplacian_matches_library(losses, shape):
    a, _ = _pair(shape, seed=1)
    torch.testing.assert_close(losses["laplacian"](a), EdgeLoss().laplacian(a), rtol=1e-5, atol=1e-6)


def test_edge_loss_value_and_gradient_match_library(losses):
    a, b = _pair(seed=2)
    mine, ref = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    value = losses["edge_loss"](mine, b)
    expected = EdgeLoss()(ref, b)
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    value.backward()
    expected.backward()
    torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("shape,heads", [((2, 6, 5, 7), 1), ((2, 6, 5, 7), 3), ((1, 8, 4, 4), 2), ((3, 4, 1, 6), 4)])
def test_strip_reshape_matches_library(strips, shape, heads):
    x = torch.randn(shape)
    b = shape[0]
    th = strips["to_horizontal_strips"](x, heads)
    tv = strips["to_vertical_strips"](x, heads)
    assert torch.equal(th, to_horizontal_strips(x, heads))
    assert torch.equal(tv, to_vertical_strips(x, heads))
    assert torch.equal(strips["from_horizontal_strips"](th, b), from_horizontal_strips(th, b))
    assert torch.equal(strips["from_vertical_strips"](tv, b), from_vertical_strips(tv, b))
    assert torch.equal(strips["from_horizontal_strips"](th, b), x)
    assert torch.equal(strips["from_vertical_strips"](tv, b), x)


def test_strip_attention_built_from_the_student_reshape_equals_the_block(strips):
    torch.manual_seed(0)
    blk = IntraStripBlock(dim=12, num_heads=2).eval()
    y = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        q, k, v = blk.qkv_local_h(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).chunk(3, dim=1)
        sq, sk, sv = (strips["to_horizontal_strips"](t, 2) for t in (q, k, v))
        out = strips["from_horizontal_strips"](torch.softmax(sq @ sk.transpose(-2, -1) / 3 ** 0.5, -1) @ sv, 2)
        torch.testing.assert_close(out, blk.horizontal(y), rtol=1e-5, atol=1e-6)

"""Hidden test for notebook 03's exercise: SimpleGate (``simple_gate``) and
simplified channel attention (``simplified_channel_attention``) against
restore_lib's NAFNet block, and a whole NAFNet block rebuilt from them."""
import pytest
import torch

from restore_lib.archs.nafnet import NAFBlock, SimpleGate
from restore_lib.course.assignments import run_student_cells, student_notebook


@pytest.fixture(scope="module")
def ns():
    return run_student_cells(student_notebook("03_restoravision_sr_deblur"), "nafnet_gate_sca")


@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 32, 16, 16), (3, 2, 1, 9)])
def test_simple_gate_matches_library_and_oracle(ns, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    got = ns["simple_gate"](x)
    c = shape[1] // 2
    assert got.shape == (shape[0], c, *shape[2:])
    torch.testing.assert_close(got, SimpleGate()(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(got, x[:, :c] * x[:, c:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("c", [4, 16])
def test_sca_matches_the_block(ns, c):
    torch.manual_seed(c)
    block = NAFBlock(c).eval()
    with torch.no_grad():
        block.sca[1].bias.normal_()
    y = torch.randn(2, c, 9, 11)  # after the gate the block has c channels (dw_expand 2, halved)
    with torch.no_grad():
        got = ns["simplified_channel_attention"](y, block.sca[1])
        want = y * block.sca(y)
        oracle = y * (torch.einsum("oi,niyx->noyx", block.sca[1].weight[:, :, 0, 0], y.mean((2, 3), keepdim=True))
                      + block.sca[1].bias.view(1, -1, 1, 1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got, oracle, atol=1e-5, rtol=0)


def test_block_rebuilt_from_student_ops(ns):
    torch.manual_seed(0)
    block = NAFBlock(8).eval()
    with torch.no_grad():
        block.beta.normal_()
        block.gamma.normal_()
    sg, sca = ns["simple_gate"], ns["simplified_channel_attention"]
    inp = torch.randn(2, 8, 12, 10)
    with torch.no_grad():
        x = sg(block.conv2(block.conv1(block.norm1(inp))))
        x = block.conv3(sca(x, block.sca[1]))
        y = inp + x * block.beta
        out = y + block.conv5(sg(block.conv4(block.norm2(y)))) * block.gamma
        torch.testing.assert_close(out, block(inp), atol=1e-5, rtol=0)

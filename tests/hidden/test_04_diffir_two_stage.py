"""Hidden test for notebook 04's exercise: DiffIR's reverse process on the
IPR (``reverse_process``) against restore_lib's ``IPRDiffusion.reverse`` and
``DiffIRS2.sample_ipr``, and against a float64 oracle on another schedule."""
import numpy as np
import pytest
import torch

from restore_lib.archs.diffir import diffusion_schedule
from restore_lib.course.assignments import run_student_cells, student_notebook
from restore_lib.models import build_model


@pytest.fixture(scope="module")
def reverse_process():
    return run_student_cells(student_notebook("04_diffir_two_stage"), "diffir_reverse")["reverse_process"]


@pytest.mark.parametrize("preset", ["small", "sr_small"])
def test_matches_the_library_reverse_process(reverse_process, preset):
    torch.manual_seed(0)
    s2 = build_model("diffir_s2", preset, dim=8, n_feats=8).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        c = s2.condition(x)
        z_T = torch.randn(3, s2.ipr_dim)
        got = reverse_process(z_T, c, s2.denoise, diffusion_schedule()["betas"])
        want = s2.diffusion.reverse(z_T, c)[-1]
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.allclose(got, want, atol=1e-6)


def test_seeded_noise_gives_sample_ipr(reverse_process):
    torch.manual_seed(1)
    s2 = build_model("diffir_s2", "small", dim=8, n_feats=8).eval()
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        noise = torch.randn(2, s2.ipr_dim, generator=torch.Generator().manual_seed(5))
        # 24 x 40 is a multiple of 8, so sample_ipr does not pad
        got = reverse_process(noise, s2.condition(x), s2.denoise, diffusion_schedule()["betas"])
        want = s2.sample_ipr(x, generator=5)
    assert torch.allclose(got, want, atol=1e-6)


def test_other_schedule_against_float64_oracle(reverse_process):
    betas = np.linspace(0.02, 0.6, 6)
    g = torch.Generator().manual_seed(3)
    z_T = torch.randn(4, 5, dtype=torch.float64, generator=g)
    cond = torch.randn(4, 5, dtype=torch.float64, generator=g)
    seen = []

    def denoiser(z, t, c):
        assert t.dtype == torch.long and t.shape == (z.shape[0],)
        seen.append(int(t[0]))
        return torch.tanh(z) + 0.1 * c + 0.01 * t[:, None].to(z.dtype)

    got = reverse_process(z_T, cond, denoiser, list(betas))
    # oracle: q(z_{t-1} | z_t, z_0) mean written out step by step in NumPy
    z = z_T.numpy().copy()
    abar = np.cumprod(1.0 - betas)
    for i in range(len(betas) - 1, -1, -1):
        prev = abar[i - 1] if i > 0 else 1.0
        z0 = np.tanh(z) + 0.1 * cond.numpy() + 0.01 * i
        z = betas[i] * np.sqrt(prev) / (1 - abar[i]) * z0 + (1 - prev) * np.sqrt(1 - betas[i]) / (1 - abar[i]) * z
    assert seen == [5, 4, 3, 2, 1, 0]
    np.testing.assert_allclose(got.numpy(), z, rtol=1e-12, atol=1e-12)

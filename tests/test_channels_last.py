"""The CUDA path trains in channels_last (TrainConfig.channels_last="auto"): every model must run forward and
backward on NHWC tensors, with the same numbers as on NCHW ones. Checked on the CPU, which has the same memory
formats; a ``.view`` on a permuted tensor, the usual failure, raises here as it would on a GPU."""
import pytest
import torch

from restore_lib.models import build_model, list_models
from restore_lib.train import TrainConfig, Trainer, to_channels_last
from test_archs_registry import IN_CHANNELS, SPECIAL_CALLS, cheapest_preset

CL = torch.channels_last


@pytest.mark.parametrize("name", list_models())
def test_model_gives_the_same_output_and_gradients_in_channels_last(name):
    torch.manual_seed(0)
    model = build_model(name, cheapest_preset(name)).eval()
    c = IN_CHANNELS.get(name, 3)
    h, w = (48, 48) if name == "srgan_discriminator" else (16, 24)
    x = torch.rand(2, c, h, w)
    call = SPECIAL_CALLS.get(name, lambda m, t: m(t))

    def run(fmt):
        model.zero_grad()
        if fmt is CL:
            to_channels_last(model)
        torch.manual_seed(1)           # the same noise for the models that draw any
        y = call(model, x.contiguous(memory_format=fmt))
        y.float().square().mean().backward()
        return y.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    y0, g0 = run(torch.contiguous_format)
    y1, g1 = run(CL)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)
    assert len(g1) == len(g0) > 0
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_trainer_channels_last_on_cpu_matches_the_default_layout():
    from restore_lib.data.datasets import MemoryPairs
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = [(f"{i}", rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32))
             for i in range(4)]
    losses = {}
    for mode in ("off", "on"):
        torch.manual_seed(0)
        model = build_model("nafnet", "small")
        cfg = TrainConfig(total_steps=3, batch_size=2, lr=1e-3, channels_last=mode, log_every=1)
        trainer = Trainer(model, MemoryPairs(pairs, patch_size=16, seed=0), torch.nn.L1Loss(), cfg, device="cpu")
        assert trainer.memory_format is (CL if mode == "on" else torch.contiguous_format)
        losses[mode] = list(trainer.fit()["loss"])
        if mode == "on":
            assert trainer.model.intro.weight.is_contiguous(memory_format=CL)
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-4)
    with pytest.raises(ValueError, match="channels_last"):
        TrainConfig(channels_last="yes")

"""The before/after slider: a static PNG on disk, and a display that falls back to that picture where widgets
do not render (a saved notebook on GitHub or nbviewer would otherwise show the text 'VBox(...)')."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from restore_lib import viz


def test_slider_display_carries_the_static_view(tmp_path):
    pytest.importorskip("ipywidgets")
    rng = np.random.default_rng(0)
    before, after = rng.random((24, 40, 3)), rng.random((24, 40, 3))
    slider = viz.before_after_slider(before, after, save_path=tmp_path / "s.png", position=0.25)
    bundle = slider._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle       # the live widget where widgets work
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))))
    expected = viz.split_view(before, after, 0.25)
    assert np.array_equal(shown, expected) and np.array_equal(np.asarray(Image.open(tmp_path / "s.png")), expected)
    assert "VBox" not in bundle["text/plain"] and "25%" in bundle["text/plain"]

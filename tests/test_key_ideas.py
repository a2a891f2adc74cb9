"""Each report notebook writes its paper's central block in a few lines and checks it against the library module
(d2l style: the block is what the student reads, the library is what runs), and ends with what to try next.
The key-idea cells are self-contained, so they run here too: an edit to the library that the cell no longer
matches fails in the unit tests, not only in nbval."""
import contextlib
import io
import json
import re

import pytest
import torch

from restore_lib.course.runner import list_notebooks

NOTEBOOKS = list_notebooks()


def cells(nb):
    return json.loads(nb.read_text(encoding="utf-8"))["cells"]


def key_idea_cells(nb):
    return [c for c in cells(nb) if c["cell_type"] == "code" and "key-idea" in c["metadata"].get("tags", [])]


@pytest.mark.parametrize("nb", [n for n in NOTEBOOKS if not n.stem.startswith("00")], ids=lambda n: n.stem[:2])
def test_the_key_idea_cells_reproduce_the_library_modules(nb):
    found = key_idea_cells(nb)
    assert found, f"{nb.name}: no code cell tagged 'key-idea'"
    for cell in found:
        src = "".join(cell["source"])
        assert src.startswith("# NBVAL_CHECK_OUTPUT") and "assert_close" in src
        assert len(src.strip().splitlines()) <= 40, "a key-idea cell is a few lines a student reads"
        out = io.StringIO()
        before = torch.random.get_rng_state()
        with contextlib.redirect_stdout(out):
            exec(compile(src, f"{nb.name}:key-idea", "exec"), {"__name__": "__key_idea__"})
        assert len(out.getvalue().strip().splitlines()) == 1, "one stable line of output (checked by nbval)"
        # a demo that reseeds the global generator would change every later random draw of the notebook (model
        # initialisations, crops), i.e. the notebook's recorded results
        assert torch.equal(torch.random.get_rng_state(), before), "the key-idea cell changed the random stream"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda n: n.stem[:2])
def test_every_notebook_ends_with_what_to_try(nb):
    last = cells(nb)[-1]
    src = "".join(last["source"])
    assert last["cell_type"] == "markdown" and src.startswith("## What to try"), nb.name
    bullets = [ln for ln in src.splitlines() if re.match(r"^\s*[-*] |^\s*\d+\. ", ln)]
    assert 3 <= len(bullets) <= 5, f"{nb.name}: {len(bullets)} experiments listed"
    settings = set(re.findall(r"`(\w+)\s*=", src))      # `name = value`: a parameter to change
    params = "".join(next(c for c in cells(nb) if "parameters" in c["metadata"].get("tags", []))["source"])
    unknown = sorted(n for n in settings if not re.search(rf"^{n}\s*=", params, re.M))
    assert settings and not unknown, f"{nb.name}: 'What to try' sets {unknown or 'no parameter'}"

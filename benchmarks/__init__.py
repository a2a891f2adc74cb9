"""Benchmarks of the registered architectures: speed, memory, compute, the
fused-attention fast paths and tiled inference on large images.

Entry points (run from the repository root):

* ``python -m benchmarks.run``   - every model, the fast-path table and the
  tiled runs (what ``make bench`` calls);
* ``python -m benchmarks.tiled`` - only the large-image tiled runs.

Nothing here is a unit test: these scripts measure and write tables to
``results/benchmarks/``. ``benchmarks/README.md`` explains every column.
"""

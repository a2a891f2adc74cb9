"""restore_lib: the thin library behind the image-restoration notebooks.

Submodules (import what you need; nothing heavy happens at import time):

* ``restore_lib.models``      - registry, ``build_model``, ``load_checkpoint``
* ``restore_lib.archs.*``     - one module per architecture
* ``restore_lib.metrics``     - PSNR/SSIM with paper protocols (``MetricSpec``)
* ``restore_lib.losses``      - pixel, edge, SSIM, perceptual, contrastive, GAN losses
* ``restore_lib.data.*``      - I/O, degradations, embedded dataset, datasets, patches, augmentation
* ``restore_lib.train``       - the training loop (exact resume)
* ``restore_lib.experiment``  - loading pairs and evaluating models for the notebooks
* ``restore_lib.course.results``     - metrics.json records and tables
* ``restore_lib.viz``         - figures and the before/after slider
* ``restore_lib.course.reproduce``   - papermill runner (``python -m restore_lib.course.reproduce``)
"""

__version__ = "0.1.0"

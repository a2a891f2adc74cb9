"""restore_lib: the thin library behind the image-restoration notebooks.

Import what you need; nothing heavy happens at import time. Layers, lowest
first (a module imports only its own layer or lower ones; tests/test_layers.py):

1. ``restore_lib.archs`` - network code only, one paper per module
   (``_common``, ``baseline``, ``restormer``, ``promptir``, ``promptir_csa``,
   ``stripformer``, ``nafnet``, ``swinir``, ``fsrcnn``, ``srgan``, ``diffir``, ``ptgrm``).
2. ``restore_lib.models`` - name -> class table, ``build_model``, presets;
   ``restore_lib.checkpoints`` - reading, unwrapping and loading checkpoints,
   the one key-mismatch report.
3. ``restore_lib.utils`` - paths, seeding, device, atomic writes, hashes, git;
   ``restore_lib.weights`` - where pretrained weight files are found;
   ``restore_lib.data`` - ``io``, ``degradations``, ``imresize``, ``embedded``,
   ``datasets``, ``folders``, ``pairs``, ``patches``, ``augment``, ``manifest``
   (prepared-folder check);
   ``restore_lib.metrics`` - PSNR/SSIM with paper protocols (``MetricSpec``);
   ``restore_lib.lpips`` - LPIPS; ``restore_lib.losses`` - training losses;
   ``restore_lib.features`` - frozen ImageNet features;
   ``restore_lib.priors`` - PTG-RM prior extractors;
   ``restore_lib.viz`` - figures and the before/after slider.
4. ``restore_lib.evaluate`` - the one evaluation loop and its tables;
   ``restore_lib.train`` - the training loop (exact resume);
   ``restore_lib.train_cli`` - training from the command line.
5. ``restore_lib.recipes`` - per report: ``promptir``, ``stripformer``,
   ``srgan``, ``diffir``, ``ptgrm``.
6. ``restore_lib.course`` - ``runner``, ``reproduce``
   (``python -m restore_lib.course.reproduce``), ``ablations``, ``grade``,
   ``assignments``, ``references`` (reference seeds, noise bands, order
   verdicts), ``results``, ``nbclean``, ``notebook``, ``env_info``,
   ``weights_check`` (what a gpu run needs before it starts), ``rehearsal``
   (the gpu path on a CPU: fake downloads, data scripts, notebooks).
"""

__version__ = "0.1.0"

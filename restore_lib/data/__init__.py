"""Data: image I/O, degradations, MATLAB-compatible resizing, the embedded
dataset, paired datasets, patches and tiled inference, paired augmentation.

Import the submodule you need (``restore_lib.data.io``,
``restore_lib.data.degradations``, ...); nothing heavy is imported here.
"""

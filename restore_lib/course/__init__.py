"""Course tooling: notebook runner, reproduction CLI, ablations, grading, assignments, metrics.json records (layer 6; nothing else in restore_lib imports it)."""

"""Evaluator components, one file each; every module here is imported by
``metrics.registry`` on first lookup. A new metric = one new file: ``register_metric`` its specs,
then a :class:`~faceedit_bench.metrics.tracks.context.Component` subclass decorated with
``register_component`` (see reconstruction.py for the smallest one)."""

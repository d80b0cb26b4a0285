"""Metrics (DESIGN §7): one file per metric, each a sum-reduced torchmetrics ``Metric``.

tarr.py (TARR, preservation error, hat split), mre.py (MagGAN eq. 2), fid.py (Fréchet distance
on any extractor's features: FID, ssFID, classifier-feature FID), inception_score.py (IS, equal
to torch-fidelity), psnr_ssim.py (PSNR / SSIM as scikit-image), counterfactual.py (SynthFaces
ground-truth error), extractors.py (Inception, SwAV, classifier features from local files),
stats_cache.py (real-image statistics on disk), classifier.py (the TARR classifier),
registry.py (every record metric's name, direction, unit and tracks; the evaluator components),
tracks/ (what each evaluation track edits: attribute_flip, mask_to_face; ``tracks/components/``:
one file per evaluator component, each registering the metrics it produces), evaluator.py (the
one-pass evaluation: ``evaluate(method, datamodule, classifier, ..., track=None)``).
Nothing heavy is imported here.
"""

__all__ = ["evaluate"]


def evaluate(*args, **kwargs):
    """See :func:`faceedit_bench.metrics.evaluator.evaluate`."""
    from .evaluator import evaluate as _evaluate

    return _evaluate(*args, **kwargs)

"""Metrics (DESIGN §7): one file per metric, each a sum-reduced torchmetrics ``Metric``.

tarr.py (TARR, preservation error, hat split), mre.py (MagGAN eq. 2), fid.py (Fréchet distance
on any extractor's features: FID, ssFID, classifier-feature FID), inception_score.py (IS, equal
to torch-fidelity), psnr_ssim.py (PSNR / SSIM as scikit-image), counterfactual.py (SynthFaces
ground-truth error), extractors.py (Inception, SwAV, classifier features from local files),
stats_cache.py (real-image statistics on disk), classifier.py (the TARR classifier),
evaluator.py (the one-pass evaluation: ``evaluate(method, datamodule, classifier, ...)``).
Nothing heavy is imported here.
"""

__all__ = ["evaluate"]


def evaluate(*args, **kwargs):
    """See :func:`faceedit_bench.metrics.evaluator.evaluate`."""
    from .evaluator import evaluate as _evaluate

    return _evaluate(*args, **kwargs)

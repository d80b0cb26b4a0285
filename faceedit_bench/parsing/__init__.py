"""Face parsing: the face-parsing.PyTorch BiSeNet, its weights, preprocessing, training and the
batched, resumable mask precompute (implementations.md §9)."""
from .bisenet import BiSeNet
from .preprocess import parse, parse_labels, preprocess
from .weights import ENV_VAR, ParserWeightsError, load_bisenet, save_bisenet

__all__ = ["BiSeNet", "ENV_VAR", "ParserWeightsError", "load_bisenet", "parse", "parse_labels",
           "preprocess", "save_bisenet", "precompute_masks"]


def __getattr__(name):  # lazy: precompute pulls in tqdm
    if name == "precompute_masks":
        from .precompute import precompute_masks

        return precompute_masks
    raise AttributeError(name)

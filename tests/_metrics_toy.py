"""A tiny procedural face world with exact counterfactuals, for the metrics/evaluator tests.

Three attributes, each changing only its own parser region: Pale_Skin (skin brightness),
Black_Hair (hair colour), Mouth_Slightly_Open (mouth: open = dark 'mouth' class, closed = lip
class). Identity factors (background, skin tone, hair height, noise) are independent of the
attributes, so re-rendering with one attribute flipped is the ground-truth edit — the same
contract as SynthFaces (DESIGN §6), small enough to train a classifier in seconds.
"""
import torch
from torch.utils.data import DataLoader, Dataset

from faceedit_bench.methods.base import EditMethod
from faceedit_bench.parts import PART_INDEX

ATTRS = ("Pale_Skin", "Black_Hair", "Mouth_Slightly_Open")
RES = 32


def render(ident: dict, attrs: torch.Tensor):
    """ident: per-image factors (B,...); attrs B x 3 -> (image B x 3 x R x R in [-1,1], parts B x R x R)."""
    B = attrs.shape[0]
    img = ident["bg"].view(B, 3, 1, 1).expand(B, 3, RES, RES).clone()
    parts = torch.zeros(B, RES, RES, dtype=torch.uint8)
    rows = torch.arange(RES).view(1, RES, 1)
    cols = torch.arange(RES).view(1, 1, RES)
    hair = (rows < ident["hair_h"].view(B, 1, 1)).expand(B, RES, RES)
    face = (rows >= ident["hair_h"].view(B, 1, 1)) & (rows < 28) & (cols >= 6) & (cols < 26)
    mouth = (rows >= 20) & (rows < 23) & (cols >= 12) & (cols < 20)
    mouth = mouth.expand(B, RES, RES)
    skin = ident["tone"].view(B, 3, 1, 1) + 0.45 * attrs[:, 0].view(B, 1, 1, 1)
    hair_col = torch.where(attrs[:, 1].view(B, 1, 1, 1) > 0.5, torch.tensor(-0.85).view(1, 1, 1, 1),
                           ident["hair_col"].view(B, 3, 1, 1))
    lip_col = torch.where(attrs[:, 2].view(B, 1, 1, 1) > 0.5, torch.tensor([-0.7, -0.9, -0.9]).view(1, 3, 1, 1),
                          torch.tensor([0.6, 0.0, 0.1]).view(1, 3, 1, 1))
    img = torch.where(face.unsqueeze(1), skin.expand(B, 3, RES, RES), img)
    img = torch.where(hair.unsqueeze(1), hair_col.expand(B, 3, RES, RES), img)
    img = torch.where(mouth.unsqueeze(1), lip_col.expand(B, 3, RES, RES), img)
    parts[face] = PART_INDEX["skin"]
    parts[hair] = PART_INDEX["hair"]
    open_ = (attrs[:, 2] > 0.5).view(B, 1, 1)
    parts[mouth & open_] = PART_INDEX["mouth"]
    parts[mouth & ~open_] = PART_INDEX["u_lip"]
    img = (img + ident["noise"]).clamp(-1, 1)
    return img, parts


def make_split(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    ident = {"bg": torch.rand(n, 3, generator=g) * 1.6 - 0.8,
             "tone": (torch.rand(n, 1, generator=g) * 0.5 - 0.35).expand(n, 3) + torch.tensor([0.1, 0, -0.1]),
             "hair_h": torch.randint(5, 10, (n,), generator=g),
             "hair_col": torch.rand(n, 3, generator=g) * 0.6 - 0.1,
             "noise": 0.03 * torch.randn(n, 3, RES, RES, generator=g)}
    attrs = (torch.rand(n, 3, generator=g) < 0.45).float()
    img, parts = render(ident, attrs)
    cf_img, cf_parts = [], []
    for k in range(3):
        t = attrs.clone()
        t[:, k] = 1 - t[:, k]
        i, p = render(ident, t)
        cf_img.append(i)
        cf_parts.append(p)
    return {"image": img, "attrs": attrs, "parts": parts, "index": torch.arange(n) + seed * 10000,
            "cf_image": torch.stack(cf_img, 1), "cf_parts": torch.stack(cf_parts, 1)}


class ToyDataset(Dataset):
    def __init__(self, data: dict, cf: bool):
        self.data = data if cf else {k: v for k, v in data.items() if not k.startswith("cf_")}

    def __len__(self):
        return len(self.data["image"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.data.items()}


class ToyDataModule:
    """Duck-typed like FaceEditDataModule: prepare_data/setup/*_dataloader, attrs, res, data_hash."""

    data, crop, resize_filter = "toy", "none", "none"

    def __init__(self, n_train=384, n_val=96, n_test=24, batch_size=8):
        self.attrs, self.res, self.batch_size = ATTRS, RES, batch_size
        self.n = (n_train, n_val, n_test)
        self.data_hash = f"toy-{n_train}-{n_val}-{n_test}"
        self.splits = None

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        if self.splits is None:
            self.splits = {s: make_split(n, i + 1) for i, (s, n) in enumerate(zip(("train", "val", "test"), self.n))}

    def _loader(self, split, shuffle=False):
        self.setup()
        return DataLoader(ToyDataset(self.splits[split], split == "test"), batch_size=self.batch_size,
                          shuffle=shuffle, num_workers=0)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


class OracleMethod(EditMethod):
    """Returns the ground-truth counterfactual: needs the test set's identities (a test-only cheat)."""

    method_name = "oracle"

    def __init__(self, test_split: dict, attrs=ATTRS, res=RES):
        super().__init__(attrs, res)
        self.lookup = {int(i): n for n, i in enumerate(test_split["index"])}
        self.split = test_split
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self.current_index = None

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None):
        out = images.clone()
        diff = (src_attrs != tgt_attrs)
        for b in range(images.shape[0]):
            # find this image in the test split by pixel identity
            n = int(((self.split["image"] - images[b]).abs().flatten(1).sum(1)).argmin())
            ks = diff[b].nonzero().flatten().tolist()
            if len(ks) > 1:  # conflict rules fire only when turning ON: that one is the flip
                ks = [k for k in ks if tgt_attrs[b, k] > 0.5]
            if len(ks) == 1:
                out[b] = self.split["cf_image"][n, ks[0]]
        return out


class ToyEditor(EditMethod):
    """A deterministic imperfect editor: shifts the whole image by the attribute change (for DDP)."""

    method_name = "toy_editor"

    def __init__(self):
        super().__init__(ATTRS, RES)
        self.register_buffer("w", torch.tensor([[0.3, 0.0, -0.1], [-0.4, 0.1, 0.0], [0.0, -0.2, 0.25]]))

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None):
        shift = (tgt_attrs - src_attrs) @ self.w
        return (images + shift.view(-1, 3, 1, 1)).clamp(-1, 1)


class TinyInception(torch.nn.Module):
    """Stand-in with InceptionExtractor's interface (2048 / logits_unbiased), tiny and random."""

    name, num_features, weights_hash = "tiny-inception-standin", 16, "standin"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("a", torch.randn(3 * 8 * 8, 16, generator=g) / 8)
        self.register_buffer("b", torch.randn(16, 1008, generator=g))

    def forward(self, x):
        f = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.a
        return {"2048": f, "logits_unbiased": f @ self.b}


class TinySwAV(torch.nn.Module):
    name, num_features, weights_hash = "tiny-swav-standin", 12, "standin"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("a", torch.randn(3 * 4 * 4, 12, generator=g))

    def forward(self, x):
        return torch.relu(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.a)


def toy_classifier_path(tmp_path_factory):
    """Train the toy classifier once per test session (shared by the test modules)."""
    from faceedit_bench.metrics.classifier import train_classifier

    path = tmp_path_factory.getbasetemp() / "toy_classifier_32.pt"
    if not path.exists():
        torch.manual_seed(0)
        train_classifier(ToyDataModule(batch_size=32), path, epochs=4, width=4, lr=2e-3, progress=False)
    return path

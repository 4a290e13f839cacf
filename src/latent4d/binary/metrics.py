"""Metrics: bit usage of binary latents, PSNR, IoU, and the digits benchmark's classifier + Fréchet distance."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from scipy import linalg
from torch import nn


class BitUsage:
    """Accumulates thresholded bits (B, C, *latent) over a dataset.

    ``fraction_active``: share of bit positions (channel x location) that are not constant over the
    dataset, i.e. that carry information; ``mean_entropy``: mean binary entropy (bits) of the
    per-position frequency of ones (1.0 = balanced, 0 = constant).
    """

    def __init__(self):
        self.ones: torch.Tensor | None = None
        self.count = 0

    def update(self, bits: torch.Tensor) -> None:
        b = (bits.detach() > 0.5).double().sum(0).cpu()
        self.ones = b if self.ones is None else self.ones + b
        self.count += bits.shape[0]

    def compute(self) -> dict[str, float]:
        if self.ones is None or self.count == 0:
            return {"fraction_active": float("nan"), "mean_entropy": float("nan")}
        f = self.ones / self.count
        active = ((f > 0) & (f < 1)).double().mean().item()
        fc = f.clamp(1e-12, 1 - 1e-12)
        ent = (-(fc * fc.log2() + (1 - fc) * (1 - fc).log2())).where((f > 0) & (f < 1), torch.zeros_like(f))
        return {"fraction_active": active, "mean_entropy": ent.mean().item()}


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (dB) of images in [0, 1]: (B, ...) -> (B,)."""
    mse = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-sample intersection over union of occupancies (B, ...) (probabilities thresholded) -> (B,)."""
    p, t = (pred > threshold).flatten(1), (target > 0.5).flatten(1)
    inter = (p & t).sum(1).double()
    union = (p | t).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter)).float()


# ----------------------------------------------------------------------------- digits benchmark
class DigitClassifier(ModelMixin, ConfigMixin):
    """Small CNN on (B, 1, S, S) digits in [0, 1] (``dims=3``: (B, 1, R, R, R) occupancy grids, first conv
    with stride 2); ``features`` is the penultimate layer (B, feature_dim)."""

    @register_to_config
    def __init__(self, num_classes: int = 10, channels: int = 32, feature_dim: int = 64, in_channels: int = 1,
                 dims: int = 2):
        super().__init__()
        c = channels
        Conv, Pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
        Avg = nn.AdaptiveAvgPool2d if dims == 2 else nn.AdaptiveAvgPool3d
        self.conv = nn.Sequential(
            Conv(in_channels, c, 3, padding=1, stride=1 if dims == 2 else 2), nn.ReLU(),
            Conv(c, c, 3, padding=1), nn.ReLU(), Pool(2),
            Conv(c, 2 * c, 3, padding=1), nn.ReLU(), Conv(2 * c, 2 * c, 3, padding=1), nn.ReLU(),
            Avg(2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(2 * c * 2 ** dims, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x * 2.0 - 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 20, seed: int = 0, lr: float = 2e-3,
                     batch_size: int = 64, shift_augment: int = 1, **net) -> DigitClassifier:
    """Train a :class:`DigitClassifier` (``net``: its settings) on images ``x`` (N, 1, S, S) or grids
    (N, 1, R, R, R) and labels ``y`` (seeded, CPU-sized)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier(num_classes=int(y.max()) + 1, in_channels=x.shape[1], dims=x.dim() - 2, **net)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    with torch.enable_grad():  # callers may run under torch.no_grad()
        _fit(model, opt, sched, x, y, epochs, batch_size, shift_augment, g)
    return model.eval()


def _fit(model, opt, sched, x, y, epochs, batch_size, shift_augment, g) -> None:
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx]
            if shift_augment:
                dx, dy = (int(v) for v in torch.randint(-shift_augment, shift_augment + 1, (2,), generator=g))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(x.dim() - 2, x.dim() - 1))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


@torch.no_grad()
def classifier_outputs(model: DigitClassifier, x: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F) float64, class probabilities (N, K)) of images ``x``."""
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size])
        feats.append(f.double().numpy())
        probs.append(torch.softmax(model.head(f), -1).double().numpy())
    return np.concatenate(feats), np.concatenate(probs)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, F) and ``b`` (M, F).

    Features that are constant in both sets (dead ReLU units) make the covariances singular; ``eps`` is
    then added to their diagonals before the matrix square root (as in the reference FID code).
    """
    import warnings

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(s1 @ s2)
            ok = np.isfinite(covmean).all()
        except (linalg.LinAlgWarning, linalg.LinAlgError):
            ok = False
    if not ok:
        off = np.eye(len(s1)) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(d, 0.0)


class ClassifierEvaluator:
    """A benchmark judge: a seeded :class:`DigitClassifier` trained on the training split of ``dm`` (a
    binary-family DataModule with ``arrays(split)``: images or occupancy grids with class labels).

    ``evaluate(x, labels)`` -> ``fd`` (Fréchet distance of the classifier features of ``x`` to those of
    the held-out real test split), ``confidence`` (mean max class probability) and, where ``labels`` >= 0,
    ``accuracy`` (share classified as the requested class). ``real_fd``: FD of the real val split to the
    test split (the classifier saw neither). The classifier is cached under ``$LATENT4D_CACHE`` as
    ``<name>-<key of cache_params>`` (``cache_params`` must name everything the data and training depend on).
    """

    def __init__(self, dm, name: str, cache_params: dict, seed: int = 0, epochs: int = 20, cache: bool = True,
                 **net):
        self.train_x, self.train_y = dm.arrays("train")
        self.test_x, self.test_y = dm.arrays("test")
        self.classifier = self._classifier(name, cache_params, seed, epochs, cache, net)
        self.test_features, test_probs = classifier_outputs(self.classifier, self.test_x)
        self.test_accuracy = float((test_probs.argmax(1) == self.test_y.numpy()).mean())
        self.val_x, self.val_y = dm.arrays("val")
        val_features, _ = classifier_outputs(self.classifier, self.val_x)
        #: FD between two disjoint sets of real held-out data (val vs test; the classifier saw neither):
        #: what real data scores (training data would score worse: the classifier's features fit them)
        self.real_fd = frechet_distance(val_features, self.test_features)

    def _classifier(self, name, cache_params, seed, epochs, cache, net) -> DigitClassifier:
        from latent4d.cache import cache_key, cache_root

        folder = cache_root() / f"{name}-{cache_key(cache_params)}"
        if cache and (folder / "config.json").is_file():
            try:
                return DigitClassifier.from_pretrained(folder).eval()
            except Exception:  # noqa: BLE001 - corrupt cache: retrain
                pass
        model = train_classifier(self.train_x, self.train_y, epochs=epochs, seed=seed, **net)
        if cache:
            import shutil

            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        return model

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        feats, probs = classifier_outputs(self.classifier, images.float().cpu())
        out = {"fd": frechet_distance(feats, self.test_features), "confidence": float(probs.max(1).mean())}
        if labels is not None and bool((labels >= 0).any()):
            m = (labels >= 0).numpy()
            out["accuracy"] = float((probs.argmax(1)[m] == labels.numpy()[m]).mean())
        return out


class DigitsEvaluator(ClassifierEvaluator):
    """The digits benchmark's judge (:class:`ClassifierEvaluator` on scikit-learn's digits at ``image_size``,
    split with ``split_seed``): FD to the held-out real test digits, confidence, class accuracy."""

    def __init__(self, image_size: int = 16, seed: int = 0, epochs: int = 20, split_seed: int = 42,
                 cache: bool = True):
        from latent4d.binary.data import ImageDataModule

        dm = ImageDataModule(source="digits", image_size=image_size, seed=split_seed)
        super().__init__(dm, "binary_digit_classifier",
                         dict(s=image_size, seed=seed, e=epochs, split=split_seed, v=1), seed, epochs, cache)


class VoxelEvaluator(ClassifierEvaluator):
    """The voxel benchmark's judge: a 3D :class:`DigitClassifier` (first conv stride 2, 16 channels,
    32 features) trained on the category labels of a voxel DataModule ``dm`` (e.g. the source of the
    voxel autoencoder's run); ``cache_params`` names that data (source, resolution, shapes, seed)."""

    def __init__(self, dm, cache_params: dict, seed: int = 0, epochs: int = 10, cache: bool = True):
        super().__init__(dm, "binary_voxel_classifier", {**cache_params, "seed": seed, "e": epochs, "v": 1},
                         seed, epochs, cache, channels=16, feature_dim=32)

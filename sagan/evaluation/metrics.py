"""Sample-quality metrics on feature vectors: FID, KID, precision/recall, density/coverage.

Everything here is float64 NumPy/SciPy on ``(N, D)`` feature arrays; the features come
from an extractor in :mod:`sagan.evaluation.features`. The chain reads features → statistics →
distance, and :func:`compute_metrics` returns a dict keyed by the constants below.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FID = "fid"
KID = "kid"
KID_STD = "kid_std"
PRECISION = "precision"
RECALL = "recall"
DENSITY = "density"
COVERAGE = "coverage"
NUM_SAMPLES = "num_samples"
COHERENCE = "coherence"
ACCURACY_PREFIX = "accuracy_"  # attribute_accuracy keys: accuracy_<attribute name>

# Precision/recall compare features in row blocks of at most this many distances, so
# memory stays bounded (64 MiB of float64) whatever N is.
DISTANCE_BLOCK_ELEMENTS = 1 << 23


class GaussianStatistics(NamedTuple):
    """Mean ``mu`` (D,) and covariance ``sigma`` (D, D) of ``count`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


def _as_features(features: np.ndarray, name: str, min_count: int) -> np.ndarray:
    """``features`` as a float64 (N, D) array with N ≥ ``min_count``, or a ValueError."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {array.shape}")
    if array.shape[0] < min_count:
        raise ValueError(f"{name}: need at least {min_count} samples, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: real {a.shape[1]}, fake {b.shape[1]}")


# ---------------------------------------------------------------------------------------
# FID


def gaussian_statistics(features: np.ndarray) -> GaussianStatistics:
    """μ = mean of the rows, Σ = their unbiased covariance (1/(N−1) Σᵢ (xᵢ−μ)(xᵢ−μ)ᵀ)."""
    x = _as_features(features, "features for FID statistics", min_count=2)
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (len(x) - 1)  # (D, D)
    return GaussianStatistics(mu, sigma, len(x))


def _square_root_factor(sigma: np.ndarray) -> np.ndarray:
    """A matrix F with F Fᵀ = Σ: Cholesky's L, or V·diag(√max(λ, 0)) when Σ is singular."""
    try:
        return np.linalg.cholesky(sigma)  # ~10× cheaper than eigh at D = 2048
    except np.linalg.LinAlgError:  # singular, e.g. fewer samples than dimensions
        eigenvalues, eigenvectors = np.linalg.eigh(sigma)
        return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr √(Σ₁Σ₂) = Σᵢ √λᵢ(Fᵀ Σ₂ F), where F Fᵀ = Σ₁.

    Σ₁Σ₂ = F (Fᵀ Σ₂) has the eigenvalues of (Fᵀ Σ₂) F, a symmetric PSD matrix: they are
    real and non-negative. Those below round-off (λ < D·ε·λ_max, NumPy's rank tolerance)
    count as 0, since √ would blow their noise up; singular covariances (N < D) and
    ill-conditioned ones stay real, finite and accurate.
    """
    factor = _square_root_factor(sigma1)
    middle = factor.T @ sigma2 @ factor
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)  # exactly symmetric
    tolerance = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(), 0.0)
    return float(np.sqrt(eigenvalues[eigenvalues > tolerance]).sum())


def frechet_distance(stats1: GaussianStatistics, stats2: GaussianStatistics) -> float:
    """FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2√(Σ₁Σ₂)) (Heusel et al. 2017, eq. 6).

    Clipped at 0: the true distance is non-negative, round-off is not.
    """
    if stats1.mu.shape != stats2.mu.shape or stats1.sigma.shape != stats2.sigma.shape:
        raise ValueError(
            f"statistics differ in dimension: mu {stats1.mu.shape} vs {stats2.mu.shape}, "
            f"sigma {stats1.sigma.shape} vs {stats2.sigma.shape}"
        )
    diff = stats1.mu - stats2.mu
    trace = np.trace(stats1.sigma) + np.trace(stats2.sigma)
    distance = diff @ diff + trace - 2.0 * trace_sqrt_product(stats1.sigma, stats2.sigma)
    return max(float(distance), 0.0)


def intra_fid(
    real: np.ndarray, real_values: np.ndarray, fake: np.ndarray, fake_values: np.ndarray
) -> dict[int, float]:
    """FID within each value c of one attribute (intra-FID, as StudioGAN reports it):

        intra-FID_c = FID(real[real_values == c], fake[fake_values == c])

    for every value the fake side holds; values with fewer than 2 images on either side
    (no covariance) are left out.
    """
    scores = {}
    for value in np.unique(fake_values):
        real_group, fake_group = real[real_values == value], fake[fake_values == value]
        if min(len(real_group), len(fake_group)) >= 2:
            scores[int(value)] = frechet_distance(
                gaussian_statistics(real_group), gaussian_statistics(fake_group)
            )
    return scores


# ---------------------------------------------------------------------------------------
# KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / D + 1)³ for every row pair: (N, D), (M, D) → (N, M)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel.

    MMD²ᵤ = Σ_{i≠j} k(xᵢ,xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ) / (n(n−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / (mn)
    """
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * polynomial_kernel(x, y).mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subset_size: int, num_subsets: int, seed: int
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): mean and std of MMD²ᵤ over random subsets.

    Each of ``num_subsets`` draws takes ``subset_size`` rows of each set without
    replacement, from ``np.random.default_rng(seed)``.
    """
    real = _as_features(real, "real features for KID", min_count=2)
    fake = _as_features(fake, "fake features for KID", min_count=2)
    _check_same_dim(real, fake)
    smallest = min(len(real), len(fake))
    if not 2 <= subset_size <= smallest:
        raise ValueError(
            f"KID subset size must be in [2, {smallest}] (the smaller sample count: "
            f"{len(real)} real, {len(fake)} fake), got {subset_size} (evaluate.kid_subset_size)"
        )
    if num_subsets < 1:
        raise ValueError(f"KID needs at least one subset, got {num_subsets} (evaluate.kid_subsets)")
    rng = np.random.default_rng(seed)
    estimates = [
        mmd2_unbiased(
            real[rng.choice(len(real), subset_size, replace=False)],
            fake[rng.choice(len(fake), subset_size, replace=False)],
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(estimates)), float(np.std(estimates))


# ---------------------------------------------------------------------------------------
# Improved precision and recall


def _block_rows(columns: int) -> int:
    """Rows per block so that a block holds at most DISTANCE_BLOCK_ELEMENTS distances."""
    return max(1, DISTANCE_BLOCK_ELEMENTS // columns)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖aᵢ − bⱼ‖² = ‖aᵢ‖² + ‖bⱼ‖² − 2 aᵢ·bⱼ, clipped at 0 against round-off: (N, M)."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(squared, 0.0)


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row: (N,).

    Each row is its own nearest point (distance 0), so the k-th neighbour sits at
    partition index k.
    """
    block = _block_rows(len(features))
    radii = np.empty(len(features))
    for start in range(0, len(features), block):
        distances = _squared_distances(features[start : start + block], features)
        radii[start : start + block] = np.partition(distances, k, axis=1)[:, k]
    return radii


def manifold_coverage(support: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of ``queries`` inside at least one ball ‖q − sᵢ‖² ≤ radiiᵢ around ``support``."""
    block = _block_rows(len(support))
    inside = [
        (_squared_distances(queries[start : start + block], support) <= radii[None, :]).any(axis=1)
        for start in range(0, len(queries), block)
    ]
    return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eq. 1–2).

    precision = share of fake samples inside the real manifold (the union of balls
    around each real sample reaching its k-th nearest real neighbour); recall = share
    of real samples inside the fake manifold.
    """
    if k < 1:
        raise ValueError(f"precision/recall need k ≥ 1 neighbours, got {k} (evaluate.pr_k)")
    real = _as_features(real, "real features for precision/recall", min_count=2)
    fake = _as_features(fake, "fake features for precision/recall", min_count=2)
    _check_same_dim(real, fake)
    if min(len(real), len(fake)) <= k:  # each sample needs k neighbours besides itself
        raise ValueError(
            f"precision/recall with k={k} need more than {k} samples per set, got "
            f"{len(real)} real and {len(fake)} fake (evaluate.pr_k)"
        )
    precision = manifold_coverage(real, knn_radii(real, k), fake)
    recall = manifold_coverage(fake, knn_radii(fake, k), real)
    return precision, recall


# ---------------------------------------------------------------------------------------
# Attribute agreement (labels predicted by the encoder)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, eq. 3–4), on the real samples' k-NN balls B_i.

    density = 1/(kM) Σ_j #{i : fake_j ∈ B_i}: how many real balls hold each fake sample, 1 on
    average for fakes spread like the reals; coverage = 1/N #{i : B_i holds a fake}: the
    share of real samples with a fake one nearby, which falls when modes are dropped.
    """
    real = _as_features(real, "real features for density/coverage", min_count=k + 1)
    fake = _as_features(fake, "fake features for density/coverage", min_count=1)
    _check_same_dim(real, fake)
    radii = knn_radii(real, k)
    block = _block_rows(len(real))
    held = 0
    covered = np.zeros(len(real), dtype=bool)
    for start in range(0, len(fake), block):
        inside = _squared_distances(fake[start : start + block], real) <= radii[None, :]
        held += int(inside.sum())  # (B, N): fake j inside ball i
        covered |= inside.any(axis=0)
    return held / (k * len(fake)), float(covered.mean())


def attribute_accuracy(
    predicted: np.ndarray, labels: np.ndarray, attribute_names: tuple[str, ...]
) -> dict[str, float]:
    """Per attribute, the share of images whose predicted label equals the true one."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    expected = (len(labels), len(attribute_names))
    if predicted.shape != expected or labels.shape != expected:
        raise ValueError(
            f"predicted {predicted.shape} and true labels {labels.shape} must both be "
            f"(N, {len(attribute_names)}) for attributes {attribute_names}"
        )
    correct = (predicted == labels).mean(axis=0)  # (A,)
    return {f"{ACCURACY_PREFIX}{name}": float(correct[i]) for i, name in enumerate(attribute_names)}


def coherence_score(
    predicted: np.ndarray,
    attribute_names: tuple[str, ...],
    coherence_pairs: tuple[tuple[str, str], ...],
) -> float:
    """Share of images whose every pair (a, b) in ``coherence_pairs`` has label a == label b."""
    predicted = np.asarray(predicted)
    if predicted.ndim != 2 or predicted.shape[1] != len(attribute_names):
        raise ValueError(
            f"predicted labels must be (N, {len(attribute_names)}), got {predicted.shape}"
        )
    column = {name: i for i, name in enumerate(attribute_names)}
    unknown = sorted({n for pair in coherence_pairs for n in pair} - set(column))
    if unknown:
        raise ValueError(f"coherence pairs name unknown attributes {unknown}")
    agree = np.ones(len(predicted), dtype=bool)
    for leader, follower in coherence_pairs:
        agree &= predicted[:, column[leader]] == predicted[:, column[follower]]
    return float(agree.mean())


# ---------------------------------------------------------------------------------------


def compute_metrics(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    pr_k: int,
    seed: int,
    real_statistics: GaussianStatistics | None = None,
) -> dict[str, float]:
    """FID, KID (mean, std), precision, recall, density and coverage of ``fake`` against
    ``real`` features (the last four with ``pr_k`` neighbours).

    ``real_statistics`` (e.g. loaded from a cache) replaces the real side's statistics.
    """
    real_statistics = real_statistics or gaussian_statistics(real)
    kid, kid_std = kernel_inception_distance(real, fake, kid_subset_size, kid_subsets, seed)
    precision, recall = precision_recall(real, fake, pr_k)
    density, coverage = density_coverage(real, fake, pr_k)
    return {
        FID: frechet_distance(real_statistics, gaussian_statistics(fake)),
        KID: kid,
        KID_STD: kid_std,
        PRECISION: precision,
        RECALL: recall,
        DENSITY: density,
        COVERAGE: coverage,
        NUM_SAMPLES: len(fake),
    }

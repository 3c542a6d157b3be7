"""FID, KID, precision/recall and attribute scores against closed forms and brute-force oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg

from sagan.evaluation import metrics
from sagan.evaluation.metrics import (
    COVERAGE,
    DENSITY,
    FID,
    KID,
    KID_STD,
    NUM_SAMPLES,
    PRECISION,
    RECALL,
    GaussianStatistics,
    attribute_accuracy,
    coherence_score,
    compute_metrics,
    frechet_distance,
    gaussian_statistics,
    kernel_inception_distance,
    mmd2_unbiased,
    precision_recall,
)


def _gaussian(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mixing + shift


def _textbook_fid(x: np.ndarray, y: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 sqrtm(Σ₁Σ₂)) with SciPy's general matrix square root."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * root))


# ---------------------------------------------------------------------------------- FID


def test_statistics_are_mean_and_unbiased_covariance():
    x = np.random.default_rng(0).standard_normal((50, 4))
    stats = gaussian_statistics(x)
    np.testing.assert_allclose(stats.mu, x.mean(0))
    np.testing.assert_allclose(stats.sigma, np.cov(x, rowvar=False))
    assert stats.count == 50 and stats.sigma.dtype == np.float64


def test_fid_of_a_set_with_itself_is_zero():
    x = _gaussian(np.random.default_rng(1), 300, 16)
    assert frechet_distance(gaussian_statistics(x), gaussian_statistics(x)) == pytest.approx(
        0.0, abs=1e-9
    )


def test_fid_with_equal_covariances_is_squared_mean_distance():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((8, 8))
    sigma = a @ a.T + np.eye(8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    fid = frechet_distance(GaussianStatistics(mu1, sigma, 10), GaussianStatistics(mu2, sigma, 10))
    assert fid == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_fid_of_diagonal_gaussians_has_a_closed_form():
    # Σ diagonal: tr √(Σ₁Σ₂) = Σᵢ √(aᵢbᵢ), so FID = ‖Δμ‖² + Σᵢ (√aᵢ − √bᵢ)².
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    fid = frechet_distance(
        GaussianStatistics(mu1, np.diag(a), 3), GaussianStatistics(mu2, np.diag(b), 3)
    )
    assert fid == pytest.approx(5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-12)


@pytest.mark.parametrize("d", [2, 10, 40])
def test_fid_matches_scipy_sqrtm_on_random_gaussians(d):
    rng = np.random.default_rng(d)
    x, y = _gaussian(rng, 500, d), _gaussian(rng, 400, d, shift=0.3)
    fid = frechet_distance(gaussian_statistics(x), gaussian_statistics(y))
    assert fid == pytest.approx(_textbook_fid(x, y), rel=1e-6)


def test_fid_of_rank_deficient_covariances_matches_the_nuclear_norm_form():
    # Σ₁ = AᵀA/(n₁−1), Σ₂ = BᵀB/(n₂−1) with A, B the centred samples: the eigenvalues of
    # Σ₁Σ₂ are the squared singular values of ABᵀ/√((n₁−1)(n₂−1)), so tr √(Σ₁Σ₂) is
    # that matrix's nuclear norm — a closed form that needs no square root of a D×D matrix.
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((10, 64)), rng.standard_normal((12, 64)) * 2 + 1.0  # N < d
    a, b = x - x.mean(0), y - y.mean(0)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(9 * 11)
    diff = x.mean(0) - y.mean(0)
    expected = diff @ diff + (a * a).sum() / 9 + (b * b).sum() / 11 - 2 * nuclear
    fid = frechet_distance(gaussian_statistics(x), gaussian_statistics(y))
    assert isinstance(fid, float) and fid == pytest.approx(expected, rel=1e-9)


def test_fid_is_finite_for_ill_conditioned_covariances():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    sigma = (q * np.logspace(-14, 6, 32)) @ q.T  # condition number 1e20
    stats = GaussianStatistics(np.zeros(32), sigma, 100)
    other = GaussianStatistics(np.ones(32), np.eye(32), 100)
    assert np.isfinite(frechet_distance(stats, other))
    assert frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-6 * np.trace(sigma))


# ---------------------------------------------------------------------------------- KID


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b, strict=True)) / len(a) + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_brute_force_double_loops():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((7, 3)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-12)


def test_kid_with_whole_sets_as_the_subset_is_the_full_mmd2():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)) * 2
    mean, std = kernel_inception_distance(x, y, subset_size=6, num_subsets=3, seed=0)
    assert mean == pytest.approx(_brute_force_mmd2(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is a permutation of the sets


def test_kid_is_near_zero_for_one_distribution_and_not_for_two():
    rng = np.random.default_rng(8)
    x, same, other = (rng.standard_normal((400, 16)) for _ in range(3))
    kid_self, std_self = kernel_inception_distance(x, x, 100, 10, seed=0)
    kid_same, std_same = kernel_inception_distance(x, same, 100, 10, seed=0)
    kid_other, _ = kernel_inception_distance(x, other + 1.0, 100, 10, seed=0)
    assert abs(kid_self) < 3 * std_self and abs(kid_same) < 3 * std_same
    assert max(abs(kid_self), abs(kid_same)) < 0.01 * kid_other


def test_kid_is_reproducible_from_its_seed():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((50, 4)), rng.standard_normal((60, 4))
    first = kernel_inception_distance(x, y, 20, 5, seed=3)
    assert first == kernel_inception_distance(x, y, 20, 5, seed=3)
    assert first != kernel_inception_distance(x, y, 20, 5, seed=4)


# ------------------------------------------------------------------- precision and recall


def _brute_force_precision_recall(real, fake, k):
    def inside(support, queries):
        radius = [sorted(np.sum((s - support) ** 2, axis=1))[k] for s in support]
        return np.mean(
            [
                any(np.sum((q - s) ** 2) <= r for s, r in zip(support, radius, strict=True))
                for q in queries
            ]
        )

    return inside(real, fake), inside(fake, real)


def test_identical_sets_have_full_precision_and_recall():
    x = np.random.default_rng(10).standard_normal((100, 8))
    assert precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_far_apart_sets_have_zero_precision_and_recall():
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((50, 8)), rng.standard_normal((60, 8)) + 100.0
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_recall_of_a_hand_made_1d_case():
    # Real 0,1,2,3 with k=1: balls of radius 1, so 0.5 is inside and 10 is not (precision
    # 1/2); the two fakes are 9.5 apart, so their balls cover every real (recall 1).
    real, fake = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.5], [10.0]])
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)


def test_precision_recall_of_a_hand_made_2d_case():
    # Real: a unit square's corners and a far pair; k=1 → each corner's ball has radius 1.
    # Fake (0.5, 0.5) and (0, 1.9) lie inside, (2.5, 0) and (20, 20) not: precision 1/2.
    # The fakes' nearest-neighbour balls (radius² 2.21, 2.21, 4.25, 706.25) cover the
    # corners but not the far pair (1800 and 1861 from (20, 20)) → recall 4/6.
    real = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [50, 50], [50, 51]], dtype=float)
    fake = np.array([[0.5, 0.5], [0, 1.9], [2.5, 0], [20, 20]])
    assert precision_recall(real, fake, k=1) == pytest.approx((0.5, 4 / 6))
    assert precision_recall(real, fake, k=1) == _brute_force_precision_recall(real, fake, 1)


def test_precision_recall_in_small_blocks_match_brute_force(monkeypatch):
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK_ELEMENTS", 37)  # forces many row blocks
    rng = np.random.default_rng(12)
    real, fake = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) * 0.5 + 1.0
    expected = _brute_force_precision_recall(real, fake, 3)
    assert precision_recall(real, fake, k=3) == pytest.approx(expected)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1


# ------------------------------------------------------------------------------ errors


def test_too_few_samples_are_clear_errors():
    rng = np.random.default_rng(13)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((8, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_statistics(x[:1])
    with pytest.raises(ValueError, match="evaluate.kid_subset_size"):
        kernel_inception_distance(x, y, subset_size=9, num_subsets=2, seed=0)
    with pytest.raises(ValueError, match="evaluate.pr_k"):
        precision_recall(x, y, k=8)
    with pytest.raises(ValueError, match="evaluate.pr_k"):
        precision_recall(x, y, k=0)


def test_malformed_features_are_clear_errors():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="2-D"):
        gaussian_statistics(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_statistics(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="dimensions differ"):
        precision_recall(x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(gaussian_statistics(x), gaussian_statistics(np.ones((5, 2))))


# ------------------------------------------------------------------ attributes, summary


def test_attribute_accuracy_per_attribute():
    labels = np.array([[0, 1], [1, 1], [2, 0], [3, 0]])
    predicted = np.array([[0, 1], [1, 0], [0, 0], [3, 1]])
    assert attribute_accuracy(predicted, labels, ("a", "b")) == {
        "accuracy_a": 0.75,
        "accuracy_b": 0.5,
    }


def test_coherence_counts_images_whose_every_pair_agrees():
    names = ("hair", "brow", "left", "right", "glasses")
    pairs = (("hair", "brow"), ("left", "right"))
    predicted = np.array(
        [
            [1, 1, 2, 2, 0],  # both pairs agree
            [1, 2, 2, 2, 1],  # hair/brow differ
            [0, 0, 1, 3, 0],  # eyes differ
            [3, 3, 0, 0, 1],  # both agree
        ]
    )
    assert coherence_score(predicted, names, pairs) == 0.5
    with pytest.raises(ValueError, match="nose"):
        coherence_score(predicted, names, (("hair", "nose"),))


def test_compute_metrics_returns_every_key_and_uses_cached_statistics():
    rng = np.random.default_rng(14)
    real, fake = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) + 0.2
    kwargs = dict(kid_subset_size=20, kid_subsets=4, pr_k=3, seed=0)
    result = compute_metrics(real, fake, **kwargs)
    assert set(result) == {FID, KID, KID_STD, PRECISION, RECALL, DENSITY, COVERAGE, NUM_SAMPLES}
    assert result[NUM_SAMPLES] == 30
    other = GaussianStatistics(np.zeros(5), np.eye(5), 1000)
    cached = compute_metrics(real, fake, real_statistics=other, **kwargs)
    expected = frechet_distance(other, gaussian_statistics(fake))
    assert cached[FID] == pytest.approx(expected)
    assert all(cached[key] == result[key] for key in (KID, PRECISION, RECALL, DENSITY, COVERAGE))
    assert (result[DENSITY], result[COVERAGE]) == metrics.density_coverage(real, fake, 3)


def test_every_result_key_is_distinct():
    keys = (FID, KID, KID_STD, PRECISION, RECALL, DENSITY, COVERAGE, NUM_SAMPLES, metrics.COHERENCE)
    assert all(a != b for a, b in itertools.combinations(keys, 2))


def test_density_and_coverage_by_hand():
    # Real points 0, 1, 2, 10 on a line, k = 1: squared radii 1, 1, 1, 64.
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    fake = np.array([[0.5], [10.0], [20.0]])
    # 0.5 lies in the balls of 0 and 1, 10 in its own, 20 in none: (2 + 1 + 0) / (1 * 3);
    # the balls of 0, 1 and 10 hold a fake, that of 2 none: 3 / 4.
    density, coverage = metrics.density_coverage(real, fake, k=1)
    assert density == pytest.approx(1.0) and coverage == pytest.approx(0.75)
    # A dropped mode: every fake at the left cluster leaves the ball of 10 empty.
    density, coverage = metrics.density_coverage(real, np.full((3, 1), 1.0), k=1)
    assert density == pytest.approx(3.0) and coverage == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.density_coverage(real[:1], fake, k=1)

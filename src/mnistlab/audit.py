"""Dataset audit: likely label errors, near-duplicates and outliers, as pure functions of arrays.

The inputs are out-of-sample class probabilities (from K-fold cross-validation, computed in
``pipeline.audit_dataset``), the given labels and the images. Label issues and outlier scores
come from confident learning in ``cleanlab`` (Northcutt, Jiang & Chuang, JAIR 2021;
https://github.com/cleanlab/cleanlab); nearest neighbours from scikit-learn.
Nothing here trains a model, draws or writes files.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from mnistlab.data import IMAGE_SIDE, NUM_CLASSES

# The MNIST test-set label errors confirmed by people, from Northcutt, Athalye & Mueller,
# "Pervasive Label Errors in Test Sets Destabilize Machine Learning Benchmarks" (NeurIPS 2021
# Datasets and Benchmarks track; https://arxiv.org/abs/2103.14749; browse: https://labelerrors.com).
# Source file: https://github.com/cleanlab/label-errors/blob/main/mturk/mnist_mturk.json
# (commit 5457895). It holds the 100 candidates their method proposed, each judged by five
# Mechanical Turk workers; as in the paper, a candidate is a confirmed error when fewer than
# three of the five chose the given label. That rule gives the paper's count for MNIST (15).
# Test-set index -> the given (wrong or doubtful) label. Used only to score an audit, never to
# tune one.
MNIST_TEST_LABEL_ERRORS: dict[int, int] = {
    947: 8, 1621: 0, 1901: 9, 2130: 4, 2462: 2, 2597: 5, 2654: 6, 3520: 6,
    3558: 5, 5937: 5, 6651: 0, 6783: 1, 8527: 4, 9679: 6, 9729: 5,
}  # fmt: skip
PUBLISHED_LABEL_ERRORS_SOURCE = (
    "Northcutt, Athalye & Mueller, Pervasive Label Errors in Test Sets Destabilize Machine "
    "Learning Benchmarks, NeurIPS 2021 Datasets and Benchmarks (https://labelerrors.com; "
    "list: https://github.com/cleanlab/label-errors/blob/main/mturk/mnist_mturk.json)"
)
PUBLISHED_LABEL_ERRORS = {"mnist": MNIST_TEST_LABEL_ERRORS}

SPLITS = ("train", "test")
# Near-duplicates: root-mean-square difference of two images' pixels scaled to [0, 1].
# 0.03 is about the change made by moving a few stroke-edge pixels; two different writings
# of a digit are typically 0.2 to 0.35 apart.
NEAR_DUPLICATE_RMS = 0.03
# Neighbours checked per image (found in a PCA space) on the exact pixels.
DUPLICATE_CANDIDATES = 5
PCA_COMPONENTS = 50
PCA_SAMPLE = 10_000
# Outliers: cleanlab's score from the mean distance to this many nearest neighbours (its default).
OUTLIER_NEIGHBOURS = 10
# Flagged beyond Tukey's outlier fence on -log(cleanlab's score), i.e. on the mean distance to
# the 10 nearest neighbours: above the third quartile by 1.5 interquartile ranges.
OUTLIER_FENCE_IQR = 1.5


@dataclass(frozen=True)
class LabelIssues:
    """Per-image label scores for a pooled set, and which images cleanlab flags.

    Arrays are indexed like the pooled images; ``ranked`` holds the flagged images' positions,
    most likely mislabeled first.
    """

    given_labels: np.ndarray  # int (N,)
    suggested_labels: np.ndarray  # int (N,): the out-of-sample prediction
    label_quality: np.ndarray  # float (N,) in [0, 1]: cleanlab's normalized margin; low = suspect
    self_confidence: np.ndarray  # float (N,): the probability given to the given label
    flagged: np.ndarray  # bool (N,)
    ranked: np.ndarray  # int (F,): flagged positions by increasing label quality


@dataclass(frozen=True)
class DuplicatePair:
    """Two images (positions in the pooled set, first < second) and how far apart they are."""

    first: int
    second: int
    rms_difference: float  # root-mean-square pixel difference, pixels in [0, 1]; 0 = identical

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Outliers:
    scores: np.ndarray  # float (N,) in [0, 1]: cleanlab's outlier score; low = atypical
    flagged: np.ndarray  # bool (N,)
    ranked: np.ndarray  # int (F,): flagged positions, most atypical first
    threshold: float  # flagged when the score is below this
    order: np.ndarray  # int (N,): every position, most atypical first


def fold_of_each_image(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Assign each image to one of ``folds`` folds, stratified by label and shuffled by seed.

    Returns int (N,) with values 0..folds-1.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if folds < 2 or folds > np.bincount(labels).min(initial=len(labels)):
        raise ValueError(
            f"folds must be at least 2 and at most the size of the smallest class; received: {folds}"
        )
    assignment = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        assignment[held_out] = fold
    return assignment


def find_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Confident learning on out-of-sample probabilities (N, 10) and given labels (N,).

    ``cleanlab.filter.find_label_issues`` (default: prune by noise rate) decides which images
    are flagged; ``cleanlab.rank.get_label_quality_scores`` with the normalized margin (given
    label's probability minus the largest other one, mapped to [0, 1]) ranks them.
    """
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probabilities = _check_probabilities(probabilities, labels)
    labels = np.asarray(labels).astype(np.int64)
    quality = get_label_quality_scores(labels, probabilities, method="normalized_margin")
    flagged = cleanlab_find_label_issues(labels, probabilities, n_jobs=1)
    flagged_positions = np.flatnonzero(flagged)
    ranked = flagged_positions[np.lexsort((flagged_positions, quality[flagged_positions]))]
    return LabelIssues(
        given_labels=labels,
        suggested_labels=probabilities.argmax(axis=1),
        label_quality=quality,
        self_confidence=probabilities[np.arange(len(labels)), labels],
        flagged=flagged,
        ranked=ranked,
    )


def pixel_features(
    images: np.ndarray, components: int = PCA_COMPONENTS, seed: int = 0
) -> np.ndarray:
    """Principal components (float32 (N, components)) of uint8 images (N, 28, 28) in [0, 1].

    A cheap stand-in for the 784 pixels: distances in it track pixel distances closely, and
    a nearest-neighbour search over 70,000 images takes seconds instead of minutes.
    """
    from sklearn.decomposition import PCA

    pixels = _flat_pixels(images)
    components = min(components, pixels.shape[1], len(pixels))
    pca = PCA(n_components=components, svd_solver="randomized", random_state=seed)
    # The components of a random 10,000 images are as good as those of all, and 7x cheaper.
    sample = np.random.default_rng(seed).permutation(len(pixels))[:PCA_SAMPLE]
    pca.fit(pixels[np.sort(sample)])
    return pca.transform(pixels).astype(np.float32)


@dataclass(frozen=True)
class Neighbours:
    """Each image's nearest other images in a feature space (the image itself left out)."""

    indices: np.ndarray  # int (N, k), nearest first
    distances: np.ndarray  # float (N, k), Euclidean in the feature space


def nearest_neighbours(features: np.ndarray, count: int = OUTLIER_NEIGHBOURS) -> Neighbours:
    """The ``count`` nearest neighbours of every row of ``features`` (N, D) among the others:
    one scikit-learn search that both the duplicate and the outlier checks reuse."""
    from sklearn.neighbors import NearestNeighbors

    count = min(count, len(features) - 1)
    search = NearestNeighbors(n_neighbors=count).fit(features)
    distances, indices = search.kneighbors()  # No query: each point's neighbours exclude itself.
    return Neighbours(indices=indices, distances=distances)


def find_duplicates(
    images: np.ndarray,
    neighbours: Neighbours,
    threshold: float = NEAR_DUPLICATE_RMS,
    candidates: int = DUPLICATE_CANDIDATES,
) -> list[DuplicatePair]:
    """Pairs of images whose pixels differ by less than ``threshold`` (RMS, pixels in [0, 1]).

    Exact duplicates are found by hashing the pixels, so none is missed however many copies
    there are; near ones among each image's first ``candidates`` neighbours (from
    ``nearest_neighbours`` on e.g. ``pixel_features``), then checked on the pixels themselves.
    Sorted by difference, then by position.
    """
    images = np.asarray(images)
    pairs: dict[tuple[int, int], float] = {}
    by_content: dict[bytes, list[int]] = {}
    for position, image in enumerate(images):
        by_content.setdefault(hashlib.sha1(image.tobytes()).digest(), []).append(position)
    for group in by_content.values():
        for offset, first in enumerate(group):
            for second in group[offset + 1 :]:
                pairs[(first, second)] = 0.0

    pixels = _flat_pixels(images)
    for rank in range(min(candidates, neighbours.indices.shape[1])):
        seconds = neighbours.indices[:, rank]
        rms = np.sqrt(((pixels - pixels[seconds]) ** 2).mean(axis=1))
        for first in np.flatnonzero(rms < threshold):
            second = int(seconds[first])
            key = (int(min(first, second)), int(max(first, second)))
            pairs.setdefault(key, float(rms[first]))
    ordered = sorted(pairs.items(), key=lambda item: (item[1], item[0]))
    return [DuplicatePair(first, second, difference) for (first, second), difference in ordered]


def closest_cross_pairs(
    images: np.ndarray, neighbours: Neighbours, num_train: int, count: int
) -> list[DuplicatePair]:
    """The ``count`` closest (train, test) pairs among each test image's neighbours, however far
    apart: what a reader checks for leakage even when no pair is a near-duplicate. Positions
    are pooled (train first), so ``first`` is the train image."""
    pixels = _flat_pixels(images)
    tests = np.arange(num_train, len(images))
    best_difference = np.full(len(tests), np.inf)
    best_train = np.full(len(tests), -1)
    for column in neighbours.indices[num_train:].T:  # one neighbour rank at a time
        difference = np.sqrt(((pixels[tests] - pixels[column]) ** 2).mean(axis=1))
        better = (column < num_train) & (difference < best_difference)
        best_difference[better], best_train[better] = difference[better], column[better]
    found = np.flatnonzero(best_train >= 0)
    order = found[np.lexsort((found, best_difference[found]))][:count]
    return [
        DuplicatePair(int(best_train[i]), int(tests[i]), float(best_difference[i])) for i in order
    ]


def find_outliers(neighbours: Neighbours, fence: float = OUTLIER_FENCE_IQR) -> Outliers:
    """cleanlab's out-of-distribution scores from each image's nearest neighbours, and the
    images beyond Tukey's fence: ``fence`` IQRs above the third quartile of -log score, i.e. of
    the mean neighbour distance.

    The neighbour search is done once (``nearest_neighbours``) and handed to cleanlab as a
    precomputed sparse distance graph, so cleanlab does not search again.
    """
    from cleanlab.outlier import OutOfDistribution
    from scipy.sparse import csr_matrix
    from sklearn.neighbors import NearestNeighbors

    count, k = neighbours.indices.shape
    graph = csr_matrix(
        (neighbours.distances.ravel(), neighbours.indices.ravel(), np.arange(0, count * k + 1, k)),
        shape=(count, count),
    )
    knn = NearestNeighbors(n_neighbors=k, metric="precomputed").fit(graph)
    scores = OutOfDistribution(params={"knn": knn}).score(features=graph)
    atypical = -np.log(np.clip(scores, 1e-300, None))
    first_quartile, third_quartile = np.percentile(atypical, [25, 75])
    limit = third_quartile + fence * (third_quartile - first_quartile)
    flagged = atypical > limit
    order = np.lexsort((np.arange(len(scores)), scores))
    return Outliers(
        scores=scores,
        flagged=flagged,
        ranked=order[flagged[order]],
        threshold=float(np.exp(-limit)),
        order=order,
    )


def accuracy_without(
    probabilities: np.ndarray, labels: np.ndarray, excluded: np.ndarray
) -> tuple[float, float]:
    """Accuracy on all images, and on those not ``excluded`` (bool (N,))."""
    correct = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    kept = correct[~np.asarray(excluded, dtype=bool)]
    return float(correct.mean()), float(kept.mean()) if len(kept) else float("nan")


def published_overlap(
    test_ranking: np.ndarray,
    test_flagged: np.ndarray,
    published: dict[int, int],
    tops=(50, 100),
    review: int = 100,
) -> dict:
    """How many of a published list of test-set label errors the audit finds.

    ``test_ranking`` orders every test image from most to least likely mislabeled;
    ``test_flagged`` is bool per test image; ``review`` is the review queue's length. Only
    indices present in the test set count. ``in_queue`` and ``missed`` name the indices.
    """
    known = {index for index in published if index < len(test_flagged)}
    queued = {int(i) for i in test_ranking[:review]}
    result = {
        "published": len(known),
        "flagged": int(sum(bool(test_flagged[index]) for index in known)),
    }
    for top in tops:
        result[f"top_{top}"] = len(known & {int(i) for i in test_ranking[:top]})
    result["review"] = review
    result["in_queue"] = sorted(known & queued)
    result["missed"] = sorted(known - queued)
    return result


def review_queue(label_quality: np.ndarray, num_train: int, count: int) -> np.ndarray:
    """The ``count`` lowest-quality positions of each split (train first, then test), each split
    in rank order: lowest label quality first, ties by position. Pooled positions (N,) int."""
    quality = np.asarray(label_quality)
    queues = []
    for start, stop in ((0, num_train), (num_train, len(quality))):
        positions = np.arange(start, stop)
        order = positions[np.lexsort((positions, quality[start:stop]))]
        queues.append(order[:count])
    return np.concatenate(queues)


def shifted_copies(images: np.ndarray, pixels: int) -> list[np.ndarray]:
    """``images`` (N, 28, 28) moved ``pixels`` up, down, left and right, the uncovered edge
    filled with background (0): four copies, for test-time augmentation."""
    copies = []
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels)))
    height, width = images.shape[1:]
    for down, right in ((0, pixels), (2 * pixels, pixels), (pixels, 0), (pixels, 2 * pixels)):
        copies.append(padded[:, down : down + height, right : right + width])
    return copies


def split_and_index(position: int, num_train: int) -> tuple[str, int]:
    """A pooled position (train images first, then test) as (split, index in that split)."""
    return ("train", position) if position < num_train else ("test", position - num_train)


def _flat_pixels(images: np.ndarray) -> np.ndarray:
    return (
        np.asarray(images, dtype=np.float32).reshape(len(images), IMAGE_SIDE * IMAGE_SIDE) / 255.0
    )


def _check_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(labels), NUM_CLASSES):
        raise ValueError(
            f"expected probabilities of shape ({len(labels)}, {NUM_CLASSES});"
            f" received: {probabilities.shape}"
        )
    # float32 softmax rows sum to 1 only within rounding; cleanlab checks the sums.
    return probabilities / probabilities.sum(axis=1, keepdims=True)

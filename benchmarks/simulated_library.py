"""A simulated SigLIP-like library: a generative model of image and text vectors, with labels.

THIS IS A SIMULATION. No photo and no model is involved: the vectors are drawn from a small
generative model whose few knobs are set so that the cosine statistics look like the ones
SigLIP-base (google/siglip-base-patch16-224) gives on everyday photos: true matches ~0.08-0.20,
unrelated pairs ~-0.13-0.03, read with the checkpoint's own T ~117 and b ~-12.9 (so the score
is 0.5 at c = -b/T ~0.11). It shows the direction of an effect (ensemble vs max, exact vs
graph retrieval), not SigLIP's real numbers; `gallery-app eval` on a labelled folder with real
weights is the real measure.

The model, every vector unit length in 768-d:

- concepts come in families (dog/puppy/cat/pet-like neighbours): a family direction, and each
  concept's visual direction is that plus its own part (cosine ~FAMILY_SHARE within a family);
- images sit in a cone around an image mean: mean + 1-3 concepts (the first strongest) +
  clutter (unnamed directions, 1-2 an image) + a scene (bursts of shots share one) + noise;
  some images show no named concept at all;
- text vectors sit in a different cone (the modality gap): text mean + a noisy copy of the
  concept direction + noise; a concept has its query as typed, a few synonyms (each its own
  noisy copy, some worse than others) and a broader term (the family direction);
- exact duplicates (copies, hard links: some photos many times) and near-duplicates (an edit,
  a re-save: cosine ~0.97 to the original) carry the original's labels.

Deterministic for a given SimulationSpec (seed included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Bump when the generative model changes: cached graph indexes are keyed by it.
SIMULATION_VERSION = "1"

# SigLIP-base-patch16-224's logit_scale and logit_bias, as the checkpoint stores them
# (exp(logit_scale) ~117.3, bias ~-12.9): score 0.5 at cosine ~0.110.
SIGLIP_BASE_LOGIT_SCALE = math.log(117.33)
SIGLIP_BASE_LOGIT_BIAS = -12.93

# The advertised ranges (5th to 95th percentile) the model is tuned to, and tested against.
MATCH_COSINE_RANGE = (0.08, 0.20)
UNRELATED_COSINE_RANGE = (-0.13, 0.03)

# Shares of a concept's visual direction that are its family's and its attributes': concepts
# of one family have cosine ~0.45 between them (dog vs cat), those of two families ~0 +- 0.15.
FAMILY_SHARE = 0.15
_ATTRIBUTES = 8
_ATTRIBUTE_SHARE = 0.40

# Coefficients before normalisation; they set the cosines above (see the module docstring).
_IMAGE_MEAN = 0.60
_IMAGE_CONCEPT = 0.50  # of the first (strongest) concept; the others get 0.85-1.0 of it
_IMAGE_CLUTTER = 0.30
_IMAGE_SCENE = 0.30
_CLUTTER_LIKENESS = 0.95  # most cosine a clutter direction has to the concept it resembles
_IMAGE_NOISE = 0.45
_IMAGE_TEXT_MEAN_SD = 0.03  # per-image pull towards the text cone: some photos match everything
_TEXT_MEAN = 0.75
_TEXT_CONCEPT = 0.49
_TEXT_NOISE = 0.45
_TEXT_IMAGE_MEAN_SD = 0.02  # per-text pull towards the image cone: some words score high
_MODALITY_GAP = -0.10  # cosine between the image mean and the text mean
_NEAR_DUPLICATE_NOISE = 0.16  # -> cosine ~0.97 to the original


@dataclass(frozen=True)
class SimulationSpec:
    images: int = 100_000
    dim: int = 768
    families: int = 40
    concepts_per_family: int = 5
    synonyms: int = 3  # per concept, besides the query as typed
    scenes: int = 2000
    clutter_directions: int = 1000
    unlabelled_fraction: float = 0.25  # photos showing no named concept
    copy_fraction: float = 0.08  # exact duplicates of an earlier photo
    near_duplicate_fraction: float = 0.06
    # How far each text's concept direction strays: cosine to the true one, drawn uniformly.
    query_fidelity: tuple[float, float] = (0.80, 0.90)
    synonym_fidelity: tuple[float, float] = (0.60, 0.88)
    seed: int = 0

    @property
    def concepts(self) -> int:
        return self.families * self.concepts_per_family


@dataclass(frozen=True)
class SimulatedLibrary:
    """Image vectors with their labels, and the text vectors of every concept's query terms."""

    spec: SimulationSpec
    images: npt.NDArray[np.float32]  # (n, dim), unit rows
    labels: npt.NDArray[np.bool_]  # (concepts, n): image shows the concept
    copy_of: npt.NDArray[np.int64]  # (n,): the photo this one is an exact copy of, else -1
    near_duplicate_of: npt.NDArray[np.int64]  # (n,): likewise for near-duplicates
    family_of: npt.NDArray[np.int64]  # (concepts,)
    query_text: npt.NDArray[np.float32]  # (concepts, dim): the query as typed
    synonym_text: npt.NDArray[np.float32]  # (concepts, synonyms, dim)
    broader_text: npt.NDArray[np.float32]  # (families, dim): the family's broader term
    cones: _Cones
    concept_direction: npt.NDArray[np.float32]  # (concepts, dim): the visual directions

    def phrase_text(self, count: int, seed: int = 1) -> npt.NDArray[np.float32]:
        """Text vectors of two-concept phrases ("dog on the beach"), from the text cone."""
        rng = np.random.default_rng([self.spec.seed, seed, 7])
        pairs = rng.integers(0, self.spec.concepts, (count, 2))
        mixed = self.concept_direction[pairs[:, 0]] + 0.8 * self.concept_direction[pairs[:, 1]]
        return self.cones.text_vectors(rng, _unit(mixed), self.spec.query_fidelity)


def _unit(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / norms).astype(np.float32)


@dataclass(frozen=True)
class _Cones:
    """The two cone axes, and random content orthogonal to both of them.

    Content (concepts, clutter, scenes, noise) is kept out of the plane of the two means so
    that how far a photo or a word leans to the other cone is a knob (the *_MEAN_SD pulls),
    not an accident of where 768-d random vectors happen to point.
    """

    image_mean: npt.NDArray[np.float32]
    text_mean: npt.NDArray[np.float32]

    def content(self, rng: np.random.Generator, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """Standard normal entries scaled by 1/sqrt(dim) (norm ~1), outside the cone plane."""
        dim = self.image_mean.shape[0]
        plane, _ = np.linalg.qr(np.stack([self.image_mean, self.text_mean], axis=1))
        x = rng.standard_normal(shape).astype(np.float32) / np.float32(math.sqrt(dim))
        return (x - (x @ plane) @ plane.T).astype(np.float32)

    def noisy_copy(
        self,
        rng: np.random.Generator,
        directions: npt.NDArray[np.float32],
        fidelity: tuple[float, float],
    ) -> npt.NDArray[np.float32]:
        """Unit vectors at a cosine drawn from fidelity to each direction."""
        cos = rng.uniform(*fidelity, size=directions.shape[:-1])[..., None]
        noise = self.content(rng, directions.shape)
        # Take out the part of the noise along the direction so the cosine is what was drawn.
        noise = _unit(noise - np.sum(noise * directions, axis=-1, keepdims=True) * directions)
        return _unit(cos * directions + np.sqrt(1 - cos**2) * noise)

    def text_vectors(
        self,
        rng: np.random.Generator,
        directions: npt.NDArray[np.float32],
        fidelity: tuple[float, float],
    ) -> npt.NDArray[np.float32]:
        """Text embeddings for concept directions: text cone + a noisy copy + noise."""
        concept = self.noisy_copy(rng, directions, fidelity)
        pull = rng.normal(0, _TEXT_IMAGE_MEAN_SD, directions.shape[:-1])[..., None]
        return _unit(
            _TEXT_MEAN * self.text_mean
            + pull * self.image_mean
            + _TEXT_CONCEPT * concept
            + _TEXT_NOISE * self.content(rng, directions.shape)
        )


def simulate(spec: SimulationSpec = SimulationSpec()) -> SimulatedLibrary:
    rng = np.random.default_rng(spec.seed)
    dim, n = spec.dim, spec.images
    image_mean = _unit(rng.standard_normal(dim))
    side = _unit(rng.standard_normal(dim))
    side = _unit(side - float(side @ image_mean) * image_mean)
    gap = _MODALITY_GAP
    cones = _Cones(image_mean, _unit(gap * image_mean + math.sqrt(1 - gap**2) * side))

    family_direction = _unit(cones.content(rng, (spec.families, dim)))
    family_of = np.repeat(np.arange(spec.families), spec.concepts_per_family)
    # Graded likeness across families (indoor/outdoor, natural/man-made, ...): a few shared
    # attribute directions, loaded per family and a little per concept.
    attributes = _unit(cones.content(rng, (_ATTRIBUTES, dim)))
    loading = rng.standard_normal((spec.families, _ATTRIBUTES))[family_of]
    loading += 0.5 * rng.standard_normal(loading.shape)
    own = _unit(cones.content(rng, (spec.concepts, dim)))
    concept_direction = _unit(
        math.sqrt(FAMILY_SHARE) * family_direction[family_of]
        + math.sqrt(_ATTRIBUTE_SHARE) * _unit(loading @ attributes)
        + math.sqrt(1 - FAMILY_SHARE - _ATTRIBUTE_SHARE) * own
    )
    # A broader term (pet, vehicle) points at what its family's concepts have in common.
    family_mean = np.stack(
        [concept_direction[family_of == f].mean(axis=0) for f in range(spec.families)]
    )
    # Clutter is unnamed things, many of them like a named one (a pool for "beach"): that
    # is what spreads the cosines of unrelated pairs upwards.
    resembles = rng.integers(0, spec.concepts, spec.clutter_directions)
    likeness = rng.uniform(0, _CLUTTER_LIKENESS, (spec.clutter_directions, 1))
    clutter = _unit(
        likeness * concept_direction[resembles]
        + np.sqrt(1 - likeness**2) * _unit(cones.content(rng, (spec.clutter_directions, dim)))
    )
    scenes = _unit(cones.content(rng, (spec.scenes, dim)))

    # Concept popularity is skewed, as in a real library (many photos of people, few of owls).
    popularity = 1.0 / np.arange(1, spec.concepts + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())

    copies = round(spec.copy_fraction * n)
    near = round(spec.near_duplicate_fraction * n)
    originals = n - copies - near
    images = np.empty((n, dim), np.float32)
    labels = np.zeros((spec.concepts, n), bool)
    chunk = 10_000
    for first in range(0, originals, chunk):
        count = min(chunk, originals - first)
        pull = rng.normal(0, _IMAGE_TEXT_MEAN_SD, (count, 1)).astype(np.float32)
        vectors = _IMAGE_MEAN * image_mean + pull * cones.text_mean
        shown = rng.choice(3, size=count, p=[0.6, 0.3, 0.1]) + 1
        shown[rng.random(count) < spec.unlabelled_fraction] = 0
        for slot in range(3):
            rows = np.flatnonzero(shown > slot)
            picked = rng.choice(spec.concepts, size=len(rows), p=popularity)
            strength = np.ones(len(rows)) if slot == 0 else rng.uniform(0.85, 1.0, len(rows))
            vectors[rows] += (
                _IMAGE_CONCEPT * strength[:, None] * concept_direction[picked]
            ).astype(np.float32)
            labels[picked, first + rows] = True
        for _ in range(2):
            picked = rng.integers(0, spec.clutter_directions, count)
            weight = rng.uniform(0.3, 1.0, (count, 1)) * (rng.random((count, 1)) < 0.75)
            vectors += (_IMAGE_CLUTTER * weight * clutter[picked]).astype(np.float32)
        vectors += _IMAGE_SCENE * scenes[rng.integers(0, spec.scenes, count)]
        vectors += _IMAGE_NOISE * cones.content(rng, (count, dim))
        images[first : first + count] = _unit(vectors)

    copy_of = np.full(n, -1, np.int64)
    near_duplicate_of = np.full(n, -1, np.int64)
    # Near-duplicates of a random original each; then copies: half of them of a few photos
    # copied many times (a folder imported again and again), half of one photo each.
    near_sources = rng.integers(0, originals, near)
    near_rows = np.arange(originals, originals + near)
    noise = cones.content(rng, (near, dim))
    images[near_rows] = _unit(images[near_sources] + _NEAR_DUPLICATE_NOISE * noise)
    near_duplicate_of[near_rows] = near_sources
    labels[:, near_rows] = labels[:, near_sources]
    popular = rng.integers(0, originals + near, max(1, copies // 40))
    copy_sources = np.concatenate(
        [rng.choice(popular, copies // 2), rng.integers(0, originals + near, copies - copies // 2)]
    )
    copy_rows = np.arange(originals + near, n)
    images[copy_rows] = images[copy_sources]
    copy_of[copy_rows] = copy_sources
    labels[:, copy_rows] = labels[:, copy_sources]

    query_text = cones.text_vectors(rng, concept_direction, spec.query_fidelity)
    synonym_text = cones.text_vectors(
        rng,
        np.repeat(concept_direction[:, None, :], spec.synonyms, axis=1),
        spec.synonym_fidelity,
    )
    broader_text = cones.text_vectors(rng, _unit(family_mean), spec.query_fidelity)
    return SimulatedLibrary(
        spec=spec,
        images=images,
        labels=labels,
        copy_of=copy_of,
        near_duplicate_of=near_duplicate_of,
        family_of=family_of,
        query_text=query_text,
        synonym_text=synonym_text,
        broader_text=broader_text,
        cones=cones,
        concept_direction=concept_direction,
    )


@dataclass(frozen=True)
class CosineRanges:
    """5th / 50th / 95th percentiles of query-as-typed cosines, by kind of pair."""

    match: tuple[float, float, float]
    same_family: tuple[float, float, float]  # shows a sibling concept only (a cat for "dog")
    unrelated: tuple[float, float, float]  # shows nothing of the query's family


def cosine_ranges(library: SimulatedLibrary, sample: int = 20_000, seed: int = 0) -> CosineRanges:
    """The cosine statistics the simulation is tuned to, on a sample of its photos."""
    rng = np.random.default_rng(seed)
    n = library.images.shape[0]
    rows = rng.choice(n, size=min(sample, n), replace=False)
    cos = library.query_text @ library.images[rows].T  # (concepts, sample)
    match = library.labels[:, rows]
    family_member = np.zeros_like(match)
    for family in range(library.spec.families):
        concepts = library.family_of == family
        family_member[concepts] = library.labels[concepts][:, rows].any(axis=0)
    same_family = family_member & ~match
    unrelated = ~family_member

    def percentiles(mask: npt.NDArray[np.bool_]) -> tuple[float, float, float]:
        low, mid, high = np.percentile(cos[mask], [5, 50, 95])
        return float(low), float(mid), float(high)

    return CosineRanges(percentiles(match), percentiles(same_family), percentiles(unrelated))

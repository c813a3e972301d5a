"""Calibrated scores, so that "nothing matches" can be an honest answer.

A raw cosine means different things in different spaces: 0.6 is unremarkable for the
colour-and-texture descriptor (whose unrelated pairs already score ~0.3) and strong for
minilm (whose unrelated texts score ~0.05). Each space is therefore calibrated against
its own collection, from the similarities of random pairs of stored vectors:

- ``median``: what two random items score;
- ``chance``: what the best of N random items scores, N the collection size — the
  (1 - 1/N) quantile of random pairs (at most the 0.9995 quantile). A query unrelated
  to everything still gets a top hit this good by chance alone. Text queries (into a
  text space, or CLIP text into an image space) are calibrated with unrelated probe
  queries instead: ``chance`` is the 0.9 quantile of their best scores
  (see ``calibrate_probes``).

A raw score maps piecewise linearly to a confidence: median -> 0, chance -> 0.5,
1.0 -> 1. The default minimum (``Settings.min_confidence`` = 0.5) therefore keeps only
hits better than the best that chance would give; when none is left the result is
explicitly empty, with the reason. The calibration is stored in the manifest and
refreshed when the collection has grown or shrunk substantially.

A global quantile alone cannot judge image queries on a mixed collection: an edited copy
of a photo (0.55-0.8 cosine) scores under the best random pair of a catalog where many
drawings look alike. Image hits are therefore also judged against **this query's own
neighbours** (score normalisation as in copy detection, SSCD / DISC21, and Lowe's ratio
test): the query's ``BACKGROUND_RANK``-th best score stands for what it scores against
unrelated items, and a hit's *stand-out* is how far it rises from there towards 1.0
(see ``standout_confidence``). A hit is confident when either view says so.

Collections under ``MIN_VECTORS`` items have no pairs to speak of: their image hits are
judged with an encoder-level prior (``PRIORS``), measured once on real pictures by
``bench/prior.py``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import operator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.search.space import SpaceIndex

MIN_VECTORS = 20  # below this there are too few pairs to say what chance looks like
_SAMPLE = 2_000
_PAIRS = 20_000
_PAIRS_AT_ONCE = 512
MAX_QUANTILE = 0.9995


@dataclass(frozen=True)
class Calibration:
    median: float
    chance: float
    mean: float
    std: float
    vectors: int  # collection size when measured

    def confidence(self, scores: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.curve(np.asarray(scores, dtype=np.float32)).astype(np.float32)

    def curve(self, scores: NDArray[np.float32]) -> NDArray[Any]:
        """``confidence`` before its cast to float32 (float64 or float32)."""
        if self.median < self.chance < 1.0:  # 0 at the median, 0.5 at chance, 1 at 1.0
            return np.interp(scores, (self.median, self.chance, 1.0), (0.0, 0.5, 1.0))
        low = (scores - self.median) / max(self.chance - self.median, 1e-6) * 0.5
        high = 0.5 + (scores - self.chance) / max(1.0 - self.chance, 1e-6) * 0.5
        return np.clip(np.where(scores < self.chance, low, high), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration | None:
        """None for a record this version cannot read: the caller calibrates afresh."""
        try:
            return cls(float(data["median"]), float(data["chance"]), float(data["mean"]),
                       float(data["std"]), int(data["vectors"]))
        except (KeyError, TypeError, ValueError):
            return None


def calibrate(space: SpaceIndex, seed: int = 0) -> Calibration | None:
    """Random-pair similarity statistics of a space's stored vectors (None if too few)."""
    labels = space.index.labels()
    n = len(labels)
    if n < MIN_VECTORS:
        return None
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(labels, size=min(n, _SAMPLE), replace=False))
    _found, vectors = space.catalog.vectors_by_vid(list(sample), space.space.dim)
    return calibrate_sample(vectors, n, rng)


def calibrate_sample(vectors: NDArray[np.float32], n: int,
                     rng: np.random.Generator | None = None) -> Calibration | None:
    """Random-pair similarity statistics of ``vectors``, a random sample of the ``n``
    vectors of a space (None if too few); what ``calibrate`` computes, for a backend
    that hands out a sample of its vectors (a remote one)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    m = len(vectors)
    if m < MIN_VECTORS:
        return None
    a = rng.integers(0, m, _PAIRS)
    b = rng.integers(0, m, _PAIRS)
    keep = a != b
    a, b = a[keep], b[keep]
    # a few hundred pairs at a time: both sides of all the pairs at once would be two
    # copies of 80 MB (at 992 dimensions), slower to allocate than to multiply
    sims = np.concatenate([
        np.einsum("ij,ij->i", vectors[a[i:i + _PAIRS_AT_ONCE]], vectors[b[i:i + _PAIRS_AT_ONCE]])
        for i in range(0, len(a), _PAIRS_AT_ONCE)])
    # pairs of identical vectors (duplicates) are not what chance looks like
    sims = sims[sims < 0.9999]
    if len(sims) < MIN_VECTORS:
        return None
    median = float(np.median(sims))
    chance = float(np.quantile(sims, min(1.0 - 1.0 / n, MAX_QUANTILE)))
    chance = min(max(chance, median + 1e-3), 0.999)
    return Calibration(median, chance, float(sims.mean()), float(sims.std()), n)


# Text queries are calibrated with probes: short queries from many walks of life, none
# about any one catalog. What the best stored item scores against them is what an
# unrelated query gets by chance; comparing stored items with each other would not do,
# since a catalog of look-alike descriptions ("The letter a.", "The letter b.") makes
# random pairs score far higher than any query does.
PROBE_TEXTS: tuple[str, ...] = (
    "mortgage refinancing interest rates", "how to reset a forgotten password",
    "symptoms of seasonal allergies", "train timetable from the city centre",
    "opening hours of the public library", "parliamentary election results",
    "recipe for gluten free banana bread", "learn spanish grammar online",
    "linear algebra eigenvalue exercises", "best practices for database indexing",
    "annual general meeting of shareholders", "weather forecast for the weekend",
    "customer support phone number", "history of the roman empire",
    "pension plan contribution limits", "javascript promise error handling",
    "job interview tips for graduates", "noise complaint to the landlord",
    "renewing a driving licence", "the plot of a famous opera",
    "vaccination schedule for infants", "compile a linux kernel module",
    "sleep hygiene and insomnia", "corporate social responsibility report",
    "wedding reception seating plan", "fixing a leaking kitchen faucet",
    "meaning of an old proverb", "university tuition fee waiver",
    "podcast about true crime", "volunteer opportunities this month",
    "thermodynamics second law explained", "freight shipping customs declaration",
    "chess opening for beginners", "medieval poetry anthology",
    "smartphone battery drains quickly", "carbon emissions trading scheme",
    "marathon training plan", "how vaccines are approved",
    "translate a legal contract", "subscription cancellation policy",
    "board game rules clarification", "office printer paper jam",
    "quarterly sales forecast spreadsheet", "jazz improvisation scales",
    "neighbourhood watch meeting", "sourdough starter feeding",
    "immigration visa requirements", "open source licence compatibility",
    "philosophy of free will", "earthquake preparedness checklist",
)
PROBE_QUANTILE = 0.9


def calibrate_probes(space: SpaceIndex, probes: NDArray[np.float32],
                     seed: int = 0) -> Calibration | None:
    """Calibration of text queries against a space, from unrelated probe queries.

    Unlike pairs of stored items, probes need no minimum collection size: what the best
    of even a few items scores against fifty unrelated queries is what chance gives."""
    n = len(space)
    if n < 1 or not len(probes):
        return None
    labels = space.index.labels()
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(labels, size=min(n, _SAMPLE), replace=False))
    _found, vectors = space.catalog.vectors_by_vid(list(sample), space.space.dim)
    if not len(vectors):
        return None
    top, _labels = space.index.search(probes.astype(np.float32), 1)
    return calibrate_probe_scores(probes, vectors, top[:, 0], n)


def calibrate_probe_scores(probes: NDArray[np.float32], vectors: NDArray[np.float32],
                           best: NDArray[np.float32], n: int) -> Calibration | None:
    """Probe calibration from a sample of a space's ``vectors`` and each probe's
    ``best`` score over the whole space of ``n`` vectors (``calibrate_probes``)."""
    if not len(vectors) or not len(probes):
        return None
    sims = probes @ vectors.T
    best = np.asarray(best, np.float32)
    best = best[np.isfinite(best)]
    if not len(best):
        return None
    median = float(np.median(sims))
    chance = float(np.quantile(best, PROBE_QUANTILE))
    chance = min(max(chance, median + 1e-3), 0.999)
    return Calibration(median, chance, float(sims.mean()), float(sims.std()), n)


@dataclass(frozen=True)
class Prior:
    median: float  # cosine of two unrelated real pictures
    chance: float  # beaten by one unrelated pair in a thousand

    def calibration(self) -> Calibration:
        return Calibration(self.median, self.chance, self.median, 0.0, 0)


# Measured with `.venv/bin/python bench/prior.py` over the GNOME wallpapers and the Tux Paint
# stamps (791 pictures, 312,436 pairs of different pictures; noise images reach 0.594 with
# descriptor-v1, 0.604 with descriptor-v2).
# Keyed by the encoder's model id: rerun the script when an encoder changes and add its line.
PRIORS: dict[str, Prior] = {
    "descriptor-v1": Prior(median=0.3052, chance=0.7776),
    "descriptor-v2": Prior(median=0.4016, chance=0.8306),
}


def prior(model_id: str) -> Calibration | None:
    """The encoder-level calibration of small collections (None: none measured)."""
    found = PRIORS.get(model_id)
    return found.calibration() if found is not None else None


# The query's own neighbours: its BACKGROUND_RANK-th best score stands for "unrelated".
BACKGROUND_RANK = 10
# Stand-out at which a hit is as likely a match as not (confidence 0.5), measured by
# bench/copydetect.py on the tuning half of its photos against the background sample of
# descriptor-v2 (bench/background.py): the best hit of unrelated photos stands out by
# 0.13 at most at 10 and 92 items, 0.21 at 10,362; of noise by 0.32 at most (92 items).
# Against the collection's own 10th neighbour alone it was 0.40 for unrelated photos and
# 0.45 for noise at 92 items, which is why that threshold had to be 0.5.
STANDOUT_CHANCE = 0.4


def standout_confidence(scores: NDArray[np.float32], level: float) -> NDArray[np.float32]:
    """Confidence from stand-out, how far a score rises from the query's background
    ``level`` towards 1.0: 0 at the background, 0.5 at ``STANDOUT_CHANCE`` of the way,
    1 at 1."""
    return _standout_curve(scores, level).astype(np.float32)


def _standout_curve(scores: NDArray[np.float32], level: float) -> NDArray[np.float64]:
    """``standout_confidence`` before its cast: one interpolation over the scores."""
    room = max(1.0 - level, 1e-6)
    return np.interp(scores, (level, level + STANDOUT_CHANCE * room, level + room),
                     (0.0, 0.5, 1.0))


# A fixed sample of real pictures' vectors per encoder (bench/background.py), shipped with
# the package: what a query scores against unrelated pictures whatever the collection's
# size. Its record names the pictures, the command and the SHA-256 of the vectors.
BACKGROUND_DIR = Path(__file__).parent / "backgrounds"


@functools.cache
def background(model_id: str) -> NDArray[np.float32] | None:
    """The encoder's background sample (None: none made for it, or its file does not
    match the checksum in its record, in which case it is not used)."""
    vectors_path = BACKGROUND_DIR / f"{model_id}.npy"
    record_path = vectors_path.with_suffix(".json")
    if not vectors_path.is_file() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if not _matches(vectors_path, str(record.get("sha256"))):
        return None
    vectors = np.load(vectors_path, allow_pickle=False).astype(np.float32)
    return vectors if vectors.ndim == 2 and len(vectors) > BACKGROUND_RANK else None


# Files found to match their checksum, by path, size and modification time: checked
# once, not on every start of the command line (the file ships with the package).
VERIFIED_DIR = Path.home() / ".cache" / "imgsearch" / "verified"


def _matches(path: Path, sha256: str) -> bool:
    """Whether ``path`` holds the bytes of that SHA-256 (remembered once seen)."""
    try:
        facts = path.stat()
    except OSError:
        return False
    stamp = f"{path.resolve()}\0{facts.st_size}\0{facts.st_mtime_ns}\0{sha256}"
    marker = VERIFIED_DIR / hashlib.sha256(stamp.encode()).hexdigest()[:32]
    if marker.exists():
        return True
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        return False
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # no cache to write: it is checked again next time
        pass
    return True


def background_level(space: SpaceIndex, vector: NDArray[np.float32],
                     sample: NDArray[np.float32] | None = None,
                     found: NDArray[np.float32] | None = None) -> float | None:
    """What ``vector`` scores against its ``BACKGROUND_RANK``-th neighbour among the
    collection's items and the fixed background ``sample`` together (None when there are
    too few of them for a neighbourhood to mean anything). With a sample the level never
    falls below what unrelated real pictures give, in a collection of any size.

    ``found``: scores of collection items against ``vector`` that include its best
    ``BACKGROUND_RANK`` + 1 in the whole collection (what a search by this vector has
    just found, see ``own_best``); the collection is not searched again then (a second
    index search cost 6 of 18 ms a query at 1M vectors, bench/tenmillion.py)."""
    scores: list[NDArray[np.float32]] = []
    if found is not None and len(found) > BACKGROUND_RANK:
        found = np.asarray(found, np.float32)
        scores.append(found if np.isfinite(found).all() else found[np.isfinite(found)])
    elif len(space):
        found, _labels = space.index.search(vector.reshape(1, -1).astype(np.float32),
                                            BACKGROUND_RANK + 1)
        scores.append(found[0][np.isfinite(found[0])])
    if sample is not None and sample.shape[1] == vector.size:
        # not BLAS: its threads spin against other queries' on a busy machine (15-30 ms
        # instead of under 1 ms for this one product at load 12 on 2 cores)
        scores.append(np.einsum("ij,j->i", sample, vector.reshape(-1).astype(np.float32)
                                ).astype(np.float32))
    elif len(space) < MIN_VECTORS:
        return None
    row = scores[0] if len(scores) == 1 else np.concatenate(scores) if scores else \
        np.empty(0, np.float32)
    if len(row) <= BACKGROUND_RANK:
        return None
    place = len(row) - 1 - BACKGROUND_RANK  # the BACKGROUND_RANK-th best, counting from 0
    return float(np.partition(row, place)[place])


# An image whose neighbouring pixels are uncorrelated is noise, not a picture: a texture
# descriptor finds its like in any fine-grained photo (grey Gaussian noise scores cosine
# 0.89 against a gravel photo). Measured on the whole image reduced to at most 256 px
# (bench/copydetect.py's pictures): real photos and their edited copies have a neighbour
# correlation of 0.55 or more, 2,000 drawings 0.028 or more, skimage's grass 0.60, noise
# under 0.01. Noise of n pixels has a correlation of about 1/sqrt(n) at random; the limit
# is five times that (0.0195 at 256 x 256).
NOISE_SIGMAS = 5.0
_NOISE_SIDE = 256


def noise_like(image: Image.Image) -> bool:
    """Whether ``image`` looks like noise: no correlation between neighbouring pixels,
    across or down (a flat image is not noise)."""
    grey = image.convert("L")
    grey.thumbnail((_NOISE_SIDE, _NOISE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.float32)
    if min(pixels.shape) < 2:
        return False
    limit = NOISE_SIGMAS / np.sqrt(pixels.size)
    for a, b in ((pixels[:, 1:], pixels[:, :-1]), (pixels[1:], pixels[:-1])):
        a, b = a - a.mean(), b - b.mean()
        spread = float(np.sqrt((a * a).sum() * (b * b).sum()))
        if spread < 1e-6 or abs(float((a * b).sum()) / spread) >= limit:
            return False
    return True


def own_best(ranks: NDArray[np.int64], scores: NDArray[np.float32],
             excluded: NDArray[np.float32] | None = None) -> NDArray[np.float32] | None:
    """The scores of a ranked list (``scores``) when they hold a search's own best
    ``BACKGROUND_RANK`` + 1 over the whole collection: ``ranks`` are each entry's place
    in that search's own list (0: not from it). A search that left out the item it was
    made from (similar by id) gives that item's score as ``excluded``: the collection's
    best include it. None when some of the best are missing (a fused list cut short)."""
    wanted = BACKGROUND_RANK + 1 - (0 if excluded is None else len(excluded))
    # A list of one search's own order starts 1, 2, 3...: looking at its head is enough.
    # Else, how many distinct ranks (a set of a few dozen ints: cheaper than numpy's calls).
    if ranks[:wanted].tolist() != list(range(1, wanted + 1)) and \
            len({rank for rank in ranks.tolist() if 1 <= rank <= wanted}) < wanted:
        return None
    scores = np.asarray(scores, np.float32)
    if excluded is not None:
        scores = np.concatenate([scores, np.asarray(excluded, np.float32)])
    return scores


def judge_image_hits(scores: NDArray[np.float32], vector: NDArray[np.float32],
                     space: SpaceIndex, calibration: Calibration | None,
                     sample: NDArray[np.float32] | None,
                     found: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """Confidence of the hits scoring ``scores`` against one query image ``vector``.

    In a collection of ``MIN_VECTORS`` items or more the strongest view counts: the
    collection's calibration, or the stand-out over the query's neighbours among the
    collection and the background ``sample``. A smaller collection has no neighbours of
    its own: the encoder's prior (``calibration``) and the stand-out over the background
    must agree, so that neither pictures unlike the background (drawings, synthetic
    images) nor look-alikes in a tiny collection are claimed on one view alone. With
    neither a prior nor a sample, nothing says what chance is and every hit counts.
    ``found``: as ``background_level`` takes it."""
    small = len(space) < MIN_VECTORS
    level = None if small and sample is None else background_level(space, vector, sample,
                                                                   found)
    # each view before its cast: the two are put together, then cast once
    views = [calibration.curve(np.asarray(scores, dtype=np.float32))] \
        if calibration is not None else []
    if level is not None:
        views.append(_standout_curve(scores, level))
    if not views:
        return np.where(scores > -1.0, 1.0, 0.0).astype(np.float32) if small else \
            np.zeros(len(scores), np.float32)
    judged = views[0] if len(views) == 1 else \
        (np.minimum if small else np.maximum)(views[0], views[1])
    return judged.astype(np.float32)


def plain_image_confidence(scores: NDArray[np.float32], ranks: NDArray[np.int64],
                           vector: NDArray[np.float32], excluded: float | None,
                           calibration: Calibration, sample: NDArray[np.float32] | None,
                           ceiling: float) -> NDArray[np.float32] | None:
    """``judge_image_hits`` of a search by one image ``vector`` over its own ranked list
    (``scores``, ``ranks`` as ``own_best`` takes them; ``excluded``: the left-out item's
    score, similar by id), capped at ``ceiling``, in a handful of array calls: the same
    values as that path, for the usual case. None where that path must answer: a list
    that does not start with the search's own best, a score that is not finite, too few
    scores, a calibration outside its interpolation, a sample of another dimension.

    A query's array calls run right after the index has walked its graph, with the
    interpreter's data out of the CPU caches: this path took about half the general
    path's time in place at 1M items (bench/query_steps.py, BENCHMARKS.md)."""
    n = len(scores)
    wanted = BACKGROUND_RANK + 1 - (0 if excluded is None else 1)
    if n <= BACKGROUND_RANK or not calibration.median < calibration.chance < 1.0 or \
            ranks[:wanted].tolist() != list(range(1, wanted + 1)):
        return None
    # the BACKGROUND_RANK-th best counting from 0 (``background_level``) and the one
    # above it, of the scores (and sample) without the left-out item; the lowest and the
    # highest tell whether any score is not finite
    if sample is None and _descending(listed := scores.tolist()):
        # a search's own list comes best first: read, not partitioned (a third of this
        # function's time); NaN compares false, so a list holding one is partitioned
        low, below, above, high = (listed[-1], listed[BACKGROUND_RANK],
                                   listed[BACKGROUND_RANK - 1], listed[0])
    else:
        row = scores
        if sample is not None:
            if sample.shape[1] != vector.size:
                return None
            row = np.concatenate([scores, np.einsum("ij,j->i", sample, vector)])
        last = len(row) - 1  # NaN sorts last
        place = last - BACKGROUND_RANK
        parted = np.partition(row, (0, place, place + 1, last))
        low, below, above, high = parted[[0, place, place + 1, last]].tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    # with the left-out item among them, the BACKGROUND_RANK-th best is the item itself
    # when it falls between the two, else the nearer of them
    level = below if excluded is None else max(below, min(excluded, above))
    judged = calibration.curve(scores)  # a new float64 array: its interpolation range
    np.maximum(judged, _standout_curve(scores, level), out=judged)
    return np.minimum(judged, np.float32(ceiling), dtype=np.float32)


def _descending(values: list[float]) -> bool:
    """Whether ``values`` never rise (False where one is NaN)."""
    return all(map(operator.ge, values, itertools.islice(values, 1, None)))


def is_stale(calibration: Calibration | None, vectors: int, minimum: int = MIN_VECTORS,
             ratio: float = 0.2) -> bool:
    if calibration is None:
        return vectors >= minimum
    return abs(vectors - calibration.vectors) > ratio * max(calibration.vectors, 1)

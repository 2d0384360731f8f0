"""Multivariate window model: river ``HalfSpaceTrees`` over scaled per-identity window features.

Each closed window (time bucket) of an identity gives a feature dict ``x`` (calls, failure
ratio, distinct actions, distinct resources, novel values, hour of day). Counts are scaled
to [0, 1] by a per-identity running scaler, ``0.5 × log1p(v) / log1p(ref)`` clipped to 1,
where ``ref`` is a slowly decaying maximum of the identity's *learned* windows: a usual
window sits in [0, 0.5], a window far beyond the identity's history reaches 1. Raw values
are never fed to the trees (B24), missing keys count as 0 and unknown keys are ignored
(B25), high-cardinality fields never enter (they are reduced to novelty counts).

Memory and speed: a river HST holds a few hundred Python objects, far too many for a
million identities, and loading masses into them costs more than the walk itself. The tree
*structure* only depends on the seed, the parameters and the feature names, so river's
``HalfSpaceTrees`` builds it once per process (the template) and it is flattened into
arrays (feature, threshold, children). Each identity keeps only its node masses in two
``array('H')`` (600 bytes), plus the open window's masses as one int while it fills (see
``MultivariateModel.learn``), and ``learn``/``score`` walk the flat trees with river's exact
rules (mass update, window swap, ``size_limit`` early stop, normalisation).
``tests/models`` checks that the scores equal those of a plain river model fed the same
windows.

Score: river's score in [0, 1]; a signal is emitted from ``HST_THRESHOLD`` up, rescaled to
[0, 1]. Before the first full reference window (``WINDOW_SIZE`` learned windows) the score
is 0.0 with ``cold_start``. Windows that were held out (anomalous) are not learned and do
not move the scaler, so a burst never becomes the reference.
"""

from __future__ import annotations

import array
import logging
import math
from operator import add
from typing import Any

from river.anomaly import HalfSpaceTrees

logger = logging.getLogger(__name__)

FEATURES = ("calls", "fail_ratio", "distinct_actions", "distinct_resources", "novel", "hour_sin",
            "hour_cos")
COUNT_FEATURES = ("calls", "distinct_actions", "distinct_resources", "novel")
COUNT_INDEX = tuple(COUNT_FEATURES.index(n) if n in COUNT_FEATURES else -1 for n in FEATURES)
N_TREES = 10
HEIGHT = 3
_HEIGHT_STEPS = (None,) * HEIGHT  # ``for _ in _HEIGHT_STEPS``: HEIGHT steps, no range object
WINDOW_SIZE = 32
HST_THRESHOLD = 0.65  # stable windows stay below ~0.55 (benchmarks/bench_models.py)
SCALER_DECAY = 0.995
SCALER_FLOOR = 2.0



class _Structure:
    """River's random trees for one seed, flattened: per node feature, threshold, children."""

    __slots__ = ("roots", "feature", "threshold", "left", "right", "nodes", "cuts", "masks")

    def __init__(self, seed: int) -> None:
        model = HalfSpaceTrees(n_trees=N_TREES, height=HEIGHT, window_size=WINDOW_SIZE, seed=seed)
        model.learn_one({name: 0.0 for name in FEATURES})  # river builds the trees here
        order = {name: i for i, name in enumerate(FEATURES)}
        index: dict[int, int] = {}
        nodes: list[Any] = []
        self.roots: list[int] = []
        for tree_nodes in model._tree_nodes:
            self.roots.append(len(nodes))
            for node in tree_nodes:
                index[id(node)] = len(nodes)
                nodes.append(node)
        self.feature = [order.get(getattr(n, "feature", None), -1) for n in nodes]
        self.threshold = [float(getattr(n, "threshold", 0.0) or 0.0) for n in nodes]
        self.left = [index[id(n.children[0])] if hasattr(n, "children") else -1 for n in nodes]
        self.right = [index[id(n.children[1])] if hasattr(n, "children") else -1 for n in nodes]
        # the four lists above zipped: one index and one unpack per step of a walk
        self.nodes = list(zip(self.feature, self.threshold, self.left, self.right, strict=True))
        # Per feature, the sorted thresholds of the nodes splitting on it. A node sends
        # ``x`` left when ``x < t``, which holds exactly when fewer than rank(t) + 1 cuts
        # are ``<= x``: so a vector's *key* (per feature, how many cuts are at or below its
        # value) decides every branch, and the walks of all trees are worked out once per
        # key. ``masks`` keeps them as one int with a byte per node (see ``learn``).
        self.cuts = [sorted({t for f, t in zip(self.feature, self.threshold, strict=True)
                             if f == i}) for i in range(len(FEATURES))]
        self.masks: dict[tuple, int] = {}

    def learn_mask(self, xs: list[float]) -> int:
        """One in the byte of every node the scaled vector ``xs`` walks through, in every
        tree (the nodes whose mass ``learn`` raises), cached per key.

        The key's digits (base ``KEY_BASE``, first feature first) are
        ``bisect_right(cuts, x)`` per feature, counted here: the cuts are sorted, so those
        ``<= x`` are the ones before the first ``t`` with ``x < t`` (a NaN, never below
        any, counts them all, as in ``bisect_right``)."""
        key = 0
        base = KEY_BASE
        i = 0
        for cuts in self.cuts:
            x = xs[i]
            k = 0
            for t in cuts:
                if x < t:
                    break
                k += 1
            key = key * base + k
            i += 1
        found = self.masks.get(key)
        if found is None:
            nodes = self.nodes
            found = 0
            for node in self.roots:
                for _ in _HEIGHT_STEPS:
                    found |= 1 << (8 * node)
                    feature, threshold, left, right = nodes[node]
                    node = left if xs[feature] < threshold else right
                found |= 1 << (8 * node)
            if len(self.masks) >= MASKS_CAP:
                self.masks.clear()
            self.masks[key] = found
        return found


_STRUCTURES: dict[int, _Structure] = {}
MASKS_CAP = 4096
"""Walks kept per tree structure (shared by every identity of the process)."""
KEY_BASE = 128
"""Radix of a walk's key: above the cuts of any feature (at most one per node: 70)."""


def _structure(seed: int) -> _Structure:
    found = _STRUCTURES.get(seed)
    if found is None:
        found = _STRUCTURES[seed] = _Structure(seed)
    return found


def n_nodes() -> int:
    return N_TREES * (2 ** (HEIGHT + 1) - 1)


MAX_SCORE = N_TREES * WINDOW_SIZE * (2 ** (HEIGHT + 1) - 1)
SIZE_LIMIT = 0.1 * WINDOW_SIZE


def _hour_circle(hour: int) -> tuple[float, float]:
    """The hour of day on the unit circle, shifted into [0, 1]: (sin, cos)."""
    angle = 2 * math.pi * hour / 24
    return (math.sin(angle) + 1) / 2, (math.cos(angle) + 1) / 2


LOG1P_CACHED = 1024
_LOG1P = tuple(math.log1p(k) for k in range(LOG1P_CACHED))
"""``math.log1p`` of the whole numbers below ``LOG1P_CACHED`` (the scaler's counts): the
same function of the same doubles, so the very floats it returns when called."""

_HOUR_CIRCLE = tuple(_hour_circle(hour) for hour in range(24))  # computed once, same floats


def raw_values(calls: int, fails: int, actions: int, resources: int, novel: int,
               hour: int) -> list[float]:
    """``raw_features`` as a list in ``FEATURES`` order: what a window teaches the model
    through ``MultivariateModel.learn_values``. No value is NaN, missing or -0.0 (counts,
    a ratio of counts, points of the circle shifted into [0, 1]), so the list is already
    what ``_clean`` makes of the dict."""
    hour_sin, hour_cos = _HOUR_CIRCLE[hour % 24]
    return [float(calls), fails / calls if calls else 0.0, float(actions), float(resources),
            float(novel), hour_sin, hour_cos]


def raw_features(calls: int, fails: int, actions: int, resources: int, novel: int,
                 hour: int) -> dict[str, float]:
    """Unscaled window features (counts) plus the hour of day on the unit circle."""
    return dict(zip(FEATURES, raw_values(calls, fails, actions, resources, novel, hour),
                    strict=True))


def _clean(x: dict[str, float]) -> list[float]:
    """The features of ``x`` in ``FEATURES`` order as the model reads them (B25): a missing
    key, None or NaN counts as 0.0, unknown keys are ignored."""
    get = x.get
    out = []
    for name in FEATURES:
        value = get(name, 0.0) or 0.0
        out.append(0.0 if value != value else value)
    return out


_COUNT_POSITIONS = tuple(FEATURES.index(name) for name in COUNT_FEATURES)


def _scale_step(scale: array.array, values: list[float]) -> None:
    """One learned window's step of the scaler: each count's reference decays, and is
    raised to the window's count when that is larger (never below ``SCALER_FLOOR``).
    ``values`` is a window as ``_clean`` gives it."""
    i = 0
    for position in _COUNT_POSITIONS:
        value = values[position]
        decayed = scale[i] * SCALER_DECAY
        # max(value, decayed, SCALER_FLOOR) without the call: the builtin keeps the first
        # of equal values and takes a later one only when it is greater
        if decayed > value:
            value = decayed
        scale[i] = SCALER_FLOOR if SCALER_FLOOR > value else value
        i += 1


class MultivariateModel:
    """One identity's HST masses and feature scaler (the structure lives in a template)."""

    __slots__ = ("seed", "lmass", "rmass", "counter", "first_window", "scale", "learned",
                 "pending")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        size = n_nodes()
        self.lmass = array.array("H", bytes(2 * size))
        self.rmass = array.array("H", bytes(2 * size))
        self.counter = 0
        self.first_window = True
        self.scale = array.array("f", [SCALER_FLOOR] * len(COUNT_FEATURES))
        self.learned = 0
        self.pending = 0  # masses learned but not yet added to ``lmass`` (see ``learn``)

    def copy(self) -> MultivariateModel:
        """An independent copy. The mass arrays are shared, not copied: no code changes
        them in place (learning replaces them whole, see ``_add_pending`` and the window
        swap in ``learn``), so neither model can see the other's learning through them.
        The scaler is changed in place, so it is copied."""
        other = MultivariateModel.__new__(MultivariateModel)
        other.seed = self.seed
        other.lmass = self.lmass
        other.rmass = self.rmass
        other.counter = self.counter
        other.first_window = self.first_window
        other.scale = array.array("f", self.scale)
        other.learned = self.learned
        other.pending = self.pending
        return other

    @property
    def cold(self) -> bool:
        return self.first_window

    def scaled(self, x: dict[str, float]) -> dict[str, float]:
        """Features mapped into [0, 1] by this identity's scaler; missing keys are 0."""
        return dict(zip(FEATURES, self._vector(x), strict=True))

    def _vector(self, x: dict[str, float]) -> list[float]:
        """``scaled(x)`` as a list in ``FEATURES`` order."""
        return self._scaled_values(_clean(x))

    def _scaled_values(self, values: list[float]) -> list[float]:
        """A window as ``_clean`` gives it, scaled into [0, 1] (the hot path: no dict)."""
        scale = self.scale
        log1p = math.log1p
        table, cached, floor, slots = _LOG1P, LOG1P_CACHED, SCALER_FLOOR, COUNT_INDEX
        out = []
        n = len(values)  # ``zip(values, COUNT_INDEX)`` written out as an indexed loop
        if n > len(slots):
            n = len(slots)
        for i in range(n):
            slot = slots[i]
            if slot >= 0:
                # 0.5 * log1p(max(value, 0)) / log1p(max(ref, SCALER_FLOOR)), each log1p
                # read from ``_LOG1P`` for a whole number below LOG1P_CACHED (counts)
                v = values[i]
                if not v > 0.0:
                    v = 0.0
                k = int(v) if v < cached else -1
                num = table[k] if k == v else log1p(v)
                ref = scale[slot]
                if not ref > floor:
                    ref = floor
                k = int(ref) if ref < cached else -1
                den = table[k] if k == ref else log1p(ref)
                w = 0.5 * num / den
                out.append(0.0 if w < 0.0 else 1.0 if w > 1.0 else w)
            else:
                value = values[i]
                out.append(0.0 if value < 0.0 else 1.0 if value > 1.0 else value)
        return out

    def score(self, x: dict[str, float]) -> float:
        """River's anomaly score of the scaled window in [0, 1]; 0.0 while cold (pure)."""
        return self.score_values(_clean(x))

    def score_values(self, values: list[float]) -> float:
        """``score`` of a window given as ``_clean`` gives it (``raw_values``)."""
        if self.first_window:
            return 0.0
        xs = self._scaled_values(values)
        st = _structure(self.seed)
        nodes = st.nodes
        rmass = self.rmass
        total = 0  # integer masses times powers of two: exact, in any order
        for node in st.roots:
            depth_pow = 1
            for _ in _HEIGHT_STEPS:
                r = rmass[node]
                total += r * depth_pow
                if r < SIZE_LIMIT:
                    break
                feature, threshold, left, right = nodes[node]
                node = left if xs[feature] < threshold else right
                depth_pow <<= 1
            else:
                total += rmass[node] * depth_pow
        value = 1.0 - total / MAX_SCORE
        return 0.0 if value != value else min(1.0, max(0.0, value))

    def learn(self, x: dict[str, float]) -> None:
        """Learn one (non-held) window: the trees' masses, then the scaler.

        The masses of the current window (``lmass``) are only read once it is full (they
        become the reference ``rmass``) or saved. Until then they are kept in ``pending``,
        one byte per node of a single int, and a learned window adds its walk's mask to
        it: one integer addition instead of one array update per node of every tree. A
        window has at most ``WINDOW_SIZE`` (32) learns, so no byte ever carries over.
        """
        self.learn_values(_clean(x))

    def learn_values(self, values: list[float]) -> None:
        """``learn`` of a window given as ``_clean`` gives it (``raw_values``), without
        building and reading a dict: the window model learns every complete bucket so."""
        self.pending += _structure(self.seed).learn_mask(self._scaled_values(values))
        self.counter += 1
        if self.counter == WINDOW_SIZE:
            self._add_pending()
            self.rmass = self.lmass
            self.lmass = array.array("H", bytes(2 * len(self.lmass)))
            self.first_window = False
            self.counter = 0
        _scale_step(self.scale, values)
        self.learned += 1

    def scoring_ahead(self, windows: list[list[float]]) -> MultivariateModel | None:
        """What ``score`` needs of this model once ``windows`` are learned, without
        learning them: the same reference masses (no window fills up on the way), the
        scaler stepped through the windows and the learned count; None when one of them
        would complete a window (then only a real ``learn`` gives the new masses).

        Scores, ``scaled`` and ``learned`` read from it equal those of a copy taught the
        windows (the same scaler steps in the same order); its own ``lmass`` and
        ``pending`` lack the windows' masses, so it is for reading only, never learning.
        ``windows`` are given as ``raw_values`` gives them (``learn_values``).
        """
        if self.counter + len(windows) >= WINDOW_SIZE:
            return None
        other = self.copy()
        scale = other.scale
        for values in windows:
            _scale_step(scale, values)
        other.learned += len(windows)
        other.counter += len(windows)
        return other

    def _add_pending(self) -> None:
        """Add the pending masses into ``lmass`` (exact integer sums)."""
        if self.pending:
            counts = self.pending.to_bytes(len(self.lmass), "little")
            self.lmass = array.array("H", map(add, self.lmass, counts))
            self.pending = 0

    def signal_score(self, x: dict[str, float]) -> float:
        """The HST score rescaled so that ``HST_THRESHOLD`` maps to 0 and 1 to 1."""
        return self.signal_score_values(_clean(x))

    def signal_score_values(self, values: list[float]) -> float:
        """``signal_score`` of a window given as ``_clean`` gives it (``raw_values``)."""
        raw = self.score_values(values)
        if raw < HST_THRESHOLD:
            return 0.0
        return (raw - HST_THRESHOLD) / (1 - HST_THRESHOLD)

    def to_state(self) -> dict:
        self._add_pending()
        return {
            "l": self.lmass,
            "r": self.rmass,
            "c": self.counter,
            "f": int(self.first_window),
            "s": self.scale,
            "n": self.learned,
        }

    @classmethod
    def from_state(cls, state: dict, seed: int) -> MultivariateModel:
        model = cls(seed)
        if len(state["l"]) != n_nodes():
            model.learned = 0  # different tree shape: start the trees again (documented)
            return model
        model.lmass = state["l"]
        model.rmass = state["r"]
        model.counter = state["c"]
        model.first_window = bool(state["f"])
        model.scale = state["s"]
        model.learned = state["n"]
        return model

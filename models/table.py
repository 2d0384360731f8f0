"""``ValueTable``: a bounded memory of the values one identity used for one attribute.

Each kept value (a 32-bit hash, see ``models.common.vhash``) maps to one packed int:
``last_hour << 16 | count`` (count saturates at 65535). Beyond ``cap`` entries the table
evicts its weakest quarter (fewest uses, then oldest) into a 1024-bit bloom filter, so a
value evicted earlier is still recognised as *probably* seen; such verdicts are marked
degraded. When the bloom filter fills up it is cleared and the table becomes "lossy": from
then on an unseen verdict may be a forgotten value, and signals say so.

A quarantine (``held``) keeps values that arrived in strongly anomalous events: they are
learned only once they recur in ``accept_windows`` distinct windows, or are marked expected.
"""

from __future__ import annotations

import array
from collections import Counter

COUNT_MASK = 0xFFFF
_COUNT_MASK = COUNT_MASK  # a C integer in the compiled build (table.pxd), for the hot paths
BLOOM_BITS = 1024
BLOOM_MAX_ITEMS = 210  # about 45 % of bits set with 3 probes: false positives near 9 %
HELD_CAP = 16
RATE_ALPHA = 0.005
"""Weight of one use in the moving rate of new values (about the last 200 uses)."""
RATE_START = 0.02
SPAN_SMALL = 1 << 15
"""Last-hour spans (hours) below which ``ValueTable.evict`` ranks with 64-bit keys."""
_SPAN_SMALL = SPAN_SMALL  # a C integer in the compiled build (table.pxd)

FREQUENT = "frequent"
INFREQUENT = "infrequent"
RARE = "rare"
UNSEEN = "unseen"


def vocabulary(count: int, total: int) -> str:
    """The analyst's word for how often a value was seen among ``total`` uses."""
    if count <= 0:
        return UNSEEN
    share = count / max(total, 1)
    if share >= 0.05 and count >= 5:
        return FREQUENT
    if share >= 0.005 and count >= 3:
        return INFREQUENT
    return RARE


def least_count(share: float, total: int) -> int:
    """The smallest count ``c`` with ``c / max(total, 1) >= share``, the very test of
    ``vocabulary``: a rounded division by a fixed positive number never decreases as
    ``c`` grows, so the counts passing the test are exactly those from ``c`` up."""
    total = max(total, 1)
    c = int(share * total)  # within one or two of the answer; the loops settle it exactly
    while c > 0 and (c - 1) / total >= share:
        c -= 1
    while c / total < share:
        c += 1
    return c


class ValueTable:
    """Capped exact set of value hashes with counts and recency, plus a bloom overflow."""

    __slots__ = ("cap", "d", "total", "n1", "bloom", "bloom_n", "lossy", "held", "rate", "_words")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.d: dict[int, int] = {}
        self.total = 0
        self.n1 = 0
        self.bloom: bytearray | None = None
        self.bloom_n = 0
        self.lossy = False
        self.held: dict[int, int] = {}
        self.rate = RATE_START
        self._words: tuple[int, int, Counter] | None = None

    def in_bloom(self, h: int) -> bool:
        bloom = self.bloom
        if bloom is None:
            return False
        # the three probes (``_bloom_add``), stopping at the first miss
        p = h & 1023
        if not bloom[p >> 3] & (1 << (p & 7)):
            return False
        p = (h >> 10) & 1023
        if not bloom[p >> 3] & (1 << (p & 7)):
            return False
        p = ((h >> 20) ^ (h * 7)) & 1023
        return bool(bloom[p >> 3] & (1 << (p & 7)))

    def new_probability(self) -> float:
        """How likely the next use is a value not kept: the larger of the Good-Turing
        estimate (singletons + 1) / (uses + 2) and the recent rate of new values."""
        return max((self.n1 + 1) / (self.total + 2), self.rate)

    def learn(self, h: int, hour: int, degradations: Counter, name: str) -> bool:
        """Count one use of ``h`` at ``hour``; returns True when the value was not kept."""
        found = self.d.get(h)
        if found is not None:
            packed = found
            count = packed & _COUNT_MASK
            last = packed >> 16
            if hour > last:
                last = hour
            if count == 1:
                self.n1 -= 1
            self.d[h] = (last << 16) | (count + 1 if count < _COUNT_MASK else _COUNT_MASK)
            self.total += 1
            return False
        self.d[h] = (hour << 16) | 1
        self.n1 += 1
        self.total += 1
        if self.held:
            self.held.pop(h, None)
        if len(self.d) > self.cap:
            self.evict(len(self.d) - (self.cap * 3) // 4, degradations, name)
        return True

    def evict(self, n: int, degradations: Counter, name: str) -> None:
        """Move the ``n`` weakest entries (fewest uses, then oldest) into the bloom filter."""
        if n <= 0:
            return
        # Ranked by (uses, last hour, hash) folded into one integer per entry, which sorts
        # in the same order at C speed with no key call: hashes are 32-bit (they are saved
        # as uint32) and the uses take 16 bits. When the last hours span less than 2**15
        # hours (always, once pruned: entries live two horizons), ``count << 48`` plus
        # ``(last - first + 2**15) << 32`` (``first``: the first entry's last hour) plus
        # the hash fits in 64 bits: one pass, one C integer per entry when compiled.
        # Otherwise ``count << 96`` plus ``last << 32`` plus the hash orders (last, hash)
        # whatever the sign of ``last``. The hash is the low 32 bits of its key either way.
        d = self.d
        ranked = []
        first = low = high = 0
        for h, packed in d.items():
            last = packed >> 16
            if not ranked:
                first = low = high = last
            elif last < low:
                low = last
            elif last > high:
                high = last
            offset = last - first + _SPAN_SMALL
            if 0 <= offset < 2 * _SPAN_SMALL:
                count = packed & _COUNT_MASK
                ranked.append((count << 48) | (offset << 32) | h)
            else:
                ranked.append(0)  # the span is too wide: ranked again below
        if high - low < _SPAN_SMALL:
            ranked.sort()
        else:
            ranked = sorted([((v & _COUNT_MASK) << 96) + ((v >> 16) << 32) + k
                             for k, v in d.items()])
        for key in ranked[:n]:
            h = key & 0xFFFFFFFF
            self._forget_counts(d.pop(h))
            self._bloom_add(h, degradations, name)
        degradations[(f"novelty.{name}", "evicted")] += n

    def _forget_counts(self, packed: int) -> None:
        count = packed & _COUNT_MASK
        self.total -= count
        if count == 1:
            self.n1 -= 1

    def _bloom_add(self, h: int, degradations: Counter, name: str) -> None:
        if self.bloom is None:
            self.bloom = bytearray(BLOOM_BITS // 8)
        if self.bloom_n >= BLOOM_MAX_ITEMS:
            self.bloom = bytearray(BLOOM_BITS // 8)
            self.bloom_n = 0
            self.lossy = True
            degradations[(f"novelty.{name}", "bloom_reset")] += 1
        bloom = self.bloom
        # three probes, from three slices of the hash (C indexes in the compiled build)
        p = h & 1023
        bloom[p >> 3] |= 1 << (p & 7)
        p = (h >> 10) & 1023
        bloom[p >> 3] |= 1 << (p & 7)
        p = ((h >> 20) ^ (h * 7)) & 1023
        bloom[p >> 3] |= 1 << (p & 7)
        self.bloom_n += 1

    def prune(self, oldest_hour: int) -> int:
        """Drop entries last seen before ``oldest_hour`` (beyond the forgetting horizon)."""
        # ``packed >> 16 < oldest_hour`` is ``packed < oldest_hour << 16`` (the count takes
        # the low 16 bits): a C-level min says at once whether anything is stale (daily, for
        # every table of every identity; usually nothing is)
        if not self.d or min(self.d.values()) >= oldest_hour << 16:
            return 0
        stale = [h for h, packed in self.d.items() if packed >> 16 < oldest_hour]
        for h in stale:
            self._forget_counts(self.d.pop(h))
        return len(stale)

    def hold(self, h: int, bucket: int, accept: int) -> bool:
        """Quarantine one more sighting; True once it was seen in ``accept`` windows."""
        bucket = max(bucket, 0)  # stored unsigned; a pre-1970 clock is clamped
        packed = self.held.get(h)
        if packed is None:
            if len(self.held) >= HELD_CAP:
                oldest = min(self.held, key=lambda k: (self.held[k] >> 8, k))
                del self.held[oldest]
            windows = 1
        else:
            windows = packed & 0xFF
            if bucket != packed >> 8:
                windows = min(windows + 1, 0xFF)
            bucket = max(bucket, packed >> 8)
        self.held[h] = (bucket << 8) | windows
        return windows >= accept

    def held_windows(self, h: int) -> int:
        packed = self.held.get(h)
        return 0 if packed is None else packed & 0xFF

    def summary(self) -> Counter:
        """How many kept values are frequent, infrequent and rare (cached per total)."""
        total = self.total
        cached = self._words
        if cached is not None and cached[0] == total and cached[1] == len(self.d):
            return cached[2]
        # ``Counter(vocabulary(count, total) for every kept count)``, counted against two
        # thresholds in one pass instead of one call per value (it runs for every novelty
        # signal): frequent from ``least_count(0.05)`` and 5 up, infrequent from
        # ``least_count(0.005)`` and 3 up, rare above 0
        frequent_from = max(5, least_count(0.05, total))
        infrequent_from = max(3, least_count(0.005, total))
        below_frequent = below_infrequent = below_rare = 0
        for packed in self.d.values():
            count = packed & _COUNT_MASK
            if count < frequent_from:
                below_frequent += 1
            if count < infrequent_from:
                below_infrequent += 1
            if count < 1:
                below_rare += 1
        sizes = ((UNSEEN, below_rare), (RARE, below_infrequent - below_rare),
                 (INFREQUENT, below_frequent - below_infrequent),
                 (FREQUENT, len(self.d) - below_frequent))
        words: Counter = Counter()
        for word, n in sizes:
            if n:
                words[word] = n
        self._words = (total, len(self.d), words)
        return words

    def size_estimate(self) -> int:
        """An upper estimate of the serialised size (header and arrays)."""
        bloom = 0 if self.bloom is None else BLOOM_BITS // 8 + 40
        held = 0 if not self.held else 60 + 8 * len(self.held)
        return 150 + 8 * len(self.d) + held + bloom

    def to_state(self) -> dict:
        """Plain state; last-seen hours are stored relative to the oldest one (16 bits,
        enough because entries older than two horizons are pruned), so 8 bytes an entry."""
        base = min((packed >> 16 for packed in self.d.values()), default=0)
        keys = array.array("I", self.d.keys())
        vals = array.array("I", [_rebase(packed, base) for packed in self.d.values()])
        state = {"k": keys, "v": vals, "o": base, "t": self.total, "n1": self.n1,
                 "r": self.rate}
        if self.bloom is not None:
            state["b"] = array.array("B", self.bloom)
            state["bn"] = self.bloom_n
        if self.lossy:
            state["l"] = 1
        if self.held:
            state["hk"] = array.array("I", self.held.keys())
            state["hv"] = array.array("Q", self.held.values())
        return state

    @classmethod
    def from_state(cls, state: dict, cap: int) -> ValueTable:
        table = cls(cap)
        base = state["o"]
        table.d = {
            k: ((base + (v >> 16)) << 16) | (v & COUNT_MASK)
            for k, v in zip(state["k"], state["v"], strict=True)
        }
        table.total = state["t"]
        table.n1 = state["n1"]
        table.rate = state["r"]
        if "b" in state:
            table.bloom = bytearray(state["b"].tobytes())
            table.bloom_n = state["bn"]
        table.lossy = bool(state.get("l"))
        if "hk" in state:
            table.held = dict(zip(state["hk"], state["hv"], strict=True))
        return table


def _rebase(packed: int, base: int) -> int:
    return (min((packed >> 16) - base, COUNT_MASK) << 16) | (packed & COUNT_MASK)

"""Novelty of categorical values per identity: "first call of iam:CreateAccessKey in 41 days".

Attributes: action, service, resource, region, network (prefix and class), client family,
target tenant (cross-account), error code, and three pairs that matter more than their
parts: action with network, action with resource, credential with network (for a long-term
key this is ``credential.new_network``).

Score of an unseen value, in [0, 1]::

    weight(attribute) × (1 − P(new)) × recency × peers

``P(new)`` is the Good-Turing estimate (singletons + 1) / (uses + 2): an identity that
touches a new resource on every call is not surprised by one more. ``recency`` is 0.8 for a
value seen before but forgotten (beyond the horizon) and 0.3 when only the bloom filter
remembers it (degraded). ``peers`` lowers the score by up to 60 % when the value is common
in the identity's peer group and raises it by 15 % when the whole group never used it.

Poisoning policy: values of a *held* event (one of its signals scored at least
``holdout_score``) go to the table's quarantine and are learned after they recur in
``accept_windows`` distinct windows, or at once through ``mark_expected``. Failed calls
teach only the error code: a denied action never becomes "known". During the learning
period everything is learned and nothing is signalled.
"""

from __future__ import annotations

import logging

from detector.event import Event
from models.base import Signal
from models.common import clamp01, pair_hash, span_words, vhash
from models.context import Context
from models.settings import ModelSettings
from models.table import COUNT_MASK, ValueTable, vocabulary

logger = logging.getLogger(__name__)

# name, detector, weight, high-cardinality, learned from a failed call, phrase
ATTRIBUTES: tuple[tuple[str, str, float, bool, bool, str], ...] = (
    ("action", "novelty.action", 0.85, False, False, "first call of {}"),
    ("service", "novelty.service", 0.75, False, False, "first use of service {}"),
    ("resource", "novelty.resource", 0.5, True, False, "first access to {}"),
    ("region", "novelty.region", 0.75, False, False, "first activity in region {}"),
    ("network", "novelty.network", 0.6, False, False, "first call from network {}"),
    ("agent_family", "novelty.agent_family", 0.6, False, False, "first use of client {}"),
    ("target_tenant", "novelty.target_tenant", 0.9, False, False, "first action on tenant {}"),
    ("error_code", "novelty.error_code", 0.45, False, True, "first {} error"),
    ("action_network", "novelty.action_network", 0.45, False, False, "first call of {}"),
    ("action_resource", "novelty.action_resource", 0.35, True, False, "first {}"),
    ("credential_network", "novelty.credential_network", 0.6, False, False, "first use of {}"),
)
NAMES = tuple(item[0] for item in ATTRIBUTES)
INDEX = {name: i for i, name in enumerate(NAMES)}
DETECTORS = {item[1]: i for i, item in enumerate(ATTRIBUTES)}
CRED_NETWORK = INDEX["credential_network"]
LONG_TERM_DETECTOR = "credential.new_network"
LONG_TERM_WEIGHT = 0.8
DETECTORS[LONG_TERM_DETECTOR] = CRED_NETWORK
PAIR_SEP = "|"


def network_label(event: Event) -> str:
    """The network value used by the models: the prefix, or the class when none."""
    return event.network_prefix or event.network or "unknown"


def extract(event: Event) -> list[tuple[int, int, str, str]]:
    """(attribute index, value hash, shown text, feedback value) for each present value."""
    out: list[tuple[int, int, str, str]] = []
    action = event.action
    ha = vhash(action) if action else 0
    net = network_label(event)
    hn = vhash(net)
    net_shown = f"{net} ({event.network})" if net != event.network else net
    if action:
        out.append((0, ha, action, action))
        service = event.service
        out.append((1, vhash(service), service, service))
    resource = event.resource
    if resource:
        out.append((2, vhash(resource), resource, resource))
        if action:
            both = f"{action} on {resource}"
            out.append((9, pair_hash(ha, vhash(resource)), both, action + PAIR_SEP + resource))
    if event.region:
        out.append((3, vhash(event.region), event.region, event.region))
    out.append((4, hn, net_shown, net))
    if event.agent_family:
        out.append((5, vhash(event.agent_family), event.agent_family, event.agent_family))
    target = event.target_tenant
    if target and target != event.tenant:
        out.append((6, vhash(target), target, target))
    if event.outcome == "failure" and event.error_code:
        out.append((7, vhash(event.error_code), event.error_code, event.error_code))
    if action:
        out.append((8, pair_hash(ha, hn), f"{action} from network {net_shown}", action + "|" + net))
    cred = event.credential_id
    if cred:
        shown = f"credential {cred} from network {net_shown}"
        out.append((10, pair_hash(vhash(cred), hn), shown, cred + PAIR_SEP + net))
    return out


def feedback_hash(index: int, value: str) -> int:
    """The hash ``extract`` gives to a signal's ``value`` (pairs are ``left|right``)."""
    if index in (8, 9, 10):
        left, _, right = value.partition(PAIR_SEP)
        return pair_hash(vhash(left), vhash(right))
    return vhash(value)


class NoveltyModel:
    """Per-attribute bounded tables of known values; signals values new to the identity."""

    __slots__ = ("settings", "tables", "last_prune_day", "horizon_h")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.tables = [ValueTable(self._cap(item[3])) for item in ATTRIBUTES]
        self.last_prune_day = 0
        self.horizon_h = int(settings.novelty_horizon_days * 24)

    def _cap(self, high_cardinality: bool) -> int:
        s = self.settings
        return s.novelty_cap_resource if high_cardinality else s.novelty_cap

    def values(self, event: Event, ctx: Context) -> list[tuple[int, int, str, str]]:
        if ctx.values is None:
            ctx.values = extract(event)
        return ctx.values

    def score(self, event: Event, ctx: Context) -> list[Signal]:
        """Signals for values this identity has not used within the horizon (pure)."""
        if ctx.learning:
            return []
        out: list[Signal] = []
        hour = ctx.hour
        horizon = self.horizon_h
        tables = self.tables
        for index, h, shown, raw in self.values(event, ctx):
            packed = tables[index].d.get(h)
            if packed is not None and hour - (packed >> 16) <= horizon:
                continue
            signal = self._signal(event, ctx, index, h, shown, raw, packed)
            if signal is not None:
                out.append(signal)
        return out

    def _signal(
        self, event: Event, ctx: Context, index: int, h: int, shown: str, raw: str, packed
    ) -> Signal | None:
        name, detector, weight, _, _, phrase = ATTRIBUTES[index]
        table = self.tables[index]
        if index == CRED_NETWORK and event.credential_type == "long_term":
            detector, weight = LONG_TERM_DETECTOR, LONG_TERM_WEIGHT
            phrase = "first use of long-term key {}"
            shown = shown.removeprefix("credential ")
        score = weight * (1.0 - table.new_probability())
        degraded = False
        if packed is not None:
            ago = ctx.ts - (packed >> 16) * 3600
            when = f"in {span_words(self.settings.novelty_horizon_days * 86400)} "
            when += f"(last seen {span_words(ago)} ago, beyond the forgetting horizon)"
            score *= 0.8
        elif table.in_bloom(h):
            when = "in the exact history; probably seen before it was evicted (approximate)"
            score *= 0.3
            degraded = True
        else:
            when = f"in {span_words(ctx.history_seconds)} of history"
            degraded = table.lossy
        peer_note, factor = self._peer_context(ctx, name, h)
        score = clamp01(score * factor)
        if score < self.settings.min_score:
            return None
        held = table.held_windows(h)
        sentence = f"{phrase.format(shown)} {when}{peer_note}"
        if held:
            sentence += f"; seen in {held} window(s) so far, held out of learning"
        if degraded and packed is None and table.lossy:
            sentence += "; some older values were forgotten by the bounded table"
        return Signal(
            detector=detector,
            score=score,
            observed=shown,
            baseline=self._baseline(table, name),
            sentence=sentence,
            value=raw,
            degraded=degraded,
            details={"attribute": name, "status": "forgotten" if packed else "unseen"},
        )

    def _peer_context(self, ctx: Context, name: str, h: int) -> tuple[str, float]:
        peers = ctx.peers
        if peers is None or not ctx.group:
            return "", 1.0
        size = peers.group_size(ctx.group)
        if size < 2:
            return "", 1.0
        share = peers.prevalence(ctx.group, name, h)
        if share <= 0.0:
            if size >= 3:
                return f"; new for its whole peer group of {size} identities", 1.15
            return "", 1.0
        users = max(1, round(share * size))
        return f"; common among peers ({users} of {size} identities in its group)", 1 - 0.6 * share

    @staticmethod
    def _baseline(table: ValueTable, name: str) -> str:
        words = table.summary()
        parts = [f"{words[w]} {w}" for w in ("frequent", "infrequent", "rare") if words[w]]
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{len(table.d)} known {name} values{detail}"

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Teach the event's values; held values go to quarantine (see module docstring)."""
        hour = ctx.hour
        if ctx.day > self.last_prune_day:
            self._prune(ctx)
        failed = event.outcome == "failure"
        learning = ctx.learning
        for index, h, _, _ in self.values(event, ctx):
            if failed and not ATTRIBUTES[index][4]:
                continue
            table = self.tables[index]
            if held and not learning and not self._known(table, h, hour):
                if not table.hold(h, ctx.bucket, self.settings.accept_windows):
                    continue
            if table.learn(h, hour, ctx.degradations, NAMES[index]) and ctx.peers is not None:
                ctx.peers.note(ctx.group, NAMES[index], h)

    def _known(self, table: ValueTable, h: int, hour: int) -> bool:
        packed = table.d.get(h)
        return packed is not None and hour - (packed >> 16) <= self.horizon_h

    def _prune(self, ctx: Context) -> None:
        self.last_prune_day = ctx.day
        oldest = ctx.hour - self.horizon_h
        for table in self.tables:
            table.prune(oldest)

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        """Feedback: make ``value`` known for the detector's attribute."""
        index = DETECTORS.get(detector)
        if index is None:
            return False
        h = feedback_hash(index, value)
        table = self.tables[index]
        table.held.pop(h, None)
        table.learn(h, ctx.hour, ctx.degradations, NAMES[index])
        return True

    def describe(self, index: int, h: int) -> str:
        """The vocabulary word for one value of one attribute (frequent … unseen)."""
        table = self.tables[index]
        packed = table.d.get(h)
        return vocabulary(0 if packed is None else packed & COUNT_MASK, table.total)

    def trim(self, ctx: Context) -> None:
        """Halve the biggest table (enforcing the profile's size cap); counted."""
        biggest = max(range(len(self.tables)), key=lambda i: len(self.tables[i].d))
        table = self.tables[biggest]
        table.evict(len(table.d) // 2, ctx.degradations, NAMES[biggest])
        ctx.degradations[("profile", "trimmed")] += 1

    def size_estimate(self) -> int:
        return sum(table.size_estimate() for table in self.tables)

    def to_state(self) -> dict:
        return {"t": [t.to_state() for t in self.tables], "p": self.last_prune_day}

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> NoveltyModel:
        model = cls(settings)
        model.tables = [
            ValueTable.from_state(item, model._cap(ATTRIBUTES[i][3]))
            for i, item in enumerate(state["t"])
        ]
        model.last_prune_day = state["p"]
        return model

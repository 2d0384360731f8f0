"""Credential use: one credential from two networks at once; instance credentials outside.

(A long-term key used from a network never seen for that key is scored by the novelty
model's credential-with-network pair under the name ``credential.new_network``.)

- ``credential.concurrent_networks`` (0.8): the same credential used from two distinct
  networks within ``concurrent_minutes``, at least one of them public (two private
  subnets at once is routine inside one VPC; cloud-service calls never count). A
  credential legitimately shared by several hosts stops being flagged once concurrency was
  seen in ``accept_windows`` distinct windows, or during the learning period, or when
  marked expected (value: the credential id).
- ``credential.instance_outside_cloud`` (0.85): temporary credentials of a cloud instance
  (``attributes["ec2_role_delivery"]`` or ``["instance_id"]`` present, or a session named
  like ``i-0abc…``), or a Kubernetes service account's token (its pods hold it; only its
  first use from outside the pod network: later ones are the novelty model's), used
  without the role-delivery marker the identity's instance
  credentials normally carry (IMDS delivery leaves it on calls from the instance), or used
  from a network that is neither a cloud service, internal nor private, from an address
  prefix never seen for the identity's instance credentials nor for any other identity's
  instance credentials in the same tenant (shared NAT gateways are learned once, through
  the ``PeerIndex``). Egress prefixes are learned in the learning period and, afterwards,
  only through the quarantine (``accept_windows`` windows) or feedback, so exfiltrated
  instance credentials keep being flagged.

During the learning period both only learn (networks, concurrency, egress prefixes); their
signals start once the identity is learned.
"""

from __future__ import annotations

import functools
import logging
import re
from operator import itemgetter

from detector.event import Event
from models.base import Signal
from models.common import span_words, vhash
from models.context import Context
from models.novelty import network_label
from models.settings import ModelSettings
from models.table import ValueTable

logger = logging.getLogger(__name__)

CREDENTIAL_CAP = 16
NETWORKS_PER_CREDENTIAL = 4
EGRESS_CAP = 16
USES_CAP = 64  # CREDENTIAL_CAP x NETWORKS_PER_CREDENTIAL: room for every remembered use
CONCURRENT_SCORE = 0.8
OUTSIDE_SCORE = 0.85
INSIDE_CLASSES = frozenset({"cloud_service", "internal", "private"})
ROUTABLE = frozenset({"public", "private"})
_INSTANCE_SESSION = re.compile(r"^i-[0-9a-f]{8,17}$")
EGRESS = "instance_egress"
K8S_SOURCE = "k8s.audit"  # detector.sources.k8s.SOURCE (the models import no source)
SERVICE_ACCOUNT = "system:serviceaccount:"
_USE_TS = itemgetter(1)  # the time of a recent-network entry [label, ts, class]


def _egress_scope(event: Event) -> str:
    """The peer-index scope of a tenant's instance egress prefixes (NAT gateways …)."""
    return f"egress/{event.tenant or '-'}"


def is_instance_credential(event: Event) -> bool:
    """Temporary credentials of a cloud instance: EC2 role delivery, an instance id, or a
    session named like ``i-0abc…`` (``ec2-instance`` once the sources normalised it); or
    a Kubernetes service account's token (``pod_token``), which the cluster hands to
    its pods as the cloud hands a role to its instances."""
    if pod_token(event):
        return True
    attrs = event.attributes
    if attrs and (attrs.get("ec2_role_delivery") or attrs.get("instance_id")):
        return True
    session = event.session
    # only a session starting "i-" can match ``_INSTANCE_SESSION``: the others (most, and
    # many of them one-off names) never reach the regular expression nor its cache
    return bool(session) and (session == "ec2-instance"
                              or session.startswith("i-") and _instance_session(session))


def pod_token(event: Event) -> bool:
    """A Kubernetes service account's call (its token lives in its pods); the identity
    may carry its cluster (``prod/system:serviceaccount:…`` from GKE and EKS exports)."""
    return event.source == K8S_SOURCE and SERVICE_ACCOUNT in event.identity


@functools.lru_cache(maxsize=4096)
def _instance_session(session: str) -> bool:
    return _INSTANCE_SESSION.match(session) is not None


class CredentialModel:
    """Recent networks per credential, concurrency history, instance egress prefixes."""

    __slots__ = ("settings", "recent", "multi", "egress", "delivery_seen", "window", "_uses")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.window = settings.concurrent_minutes * 60  # seconds (settings are frozen)
        self.recent: dict[int, list[list]] = {}
        self.multi: dict[int, int] = {}
        self.egress = ValueTable(EGRESS_CAP)
        self.delivery_seen = False  # its instance credentials carry ec2_role_delivery
        # Per (credential, network prefix, network class) already remembered: its
        # recent-network entry, and whether no other network of that credential can make
        # a use from this one concurrent (none public, and this one not public either).
        # Most calls repeat such a use, and then need neither the scan nor the lookups.
        # Only ``_remember`` changes ``recent``; it empties this whenever it adds or drops
        # an entry (which can change the answer), so what is kept is always current.
        self._uses: dict[tuple, tuple] = {}

    def score(self, event: Event, ctx: Context) -> list[Signal]:
        """Concurrency and instance-outside-cloud signals (pure)."""
        if ctx.learning:
            return []
        out: list[Signal] = []
        use = self._uses.get((event.credential_id, event.network_prefix, event.network))
        if use is not None and use[1]:
            other = None  # a known use, with nothing it could be concurrent with
        else:
            other = self._concurrent(event, ctx)
        instance = is_instance_credential(event)
        ctx.cred_other = (other, use, instance)
        if other is not None:
            out.append(self._concurrent_signal(event, ctx, other))
        if instance:
            reason = self._outside_reason(event, ctx)
            if reason:
                out.append(self._outside_signal(event, reason))
        return out

    def _outside_reason(self, event: Event, ctx: Context) -> str:
        """Why instance credentials look used outside the cloud ('' when they do not)."""
        if self.delivery_seen and not (event.attributes or {}).get("ec2_role_delivery"):
            return "without the EC2 role-delivery marker this identity's instances carry"
        if event.network in INSIDE_CLASSES:
            return ""
        h = vhash(network_label(event))
        if h in self.egress.d or self._shared_egress(event, ctx, h):
            return ""
        if pod_token(event):
            if self.egress.d or self.egress.held:
                # its token was already used from outside the pod network (a CI pipeline
                # deploying with it from hosted runners, nodes with public addresses),
                # and that first use was flagged or learned: a further outside prefix is
                # the novelty model's to weigh
                return ""
            return "outside the cluster, from a prefix no pod of the cluster uses"
        return "outside the cloud, from a prefix no instance of the tenant uses"

    def _concurrent(self, event: Event, ctx: Context) -> list | None:
        cred = event.credential_id
        if not cred or event.network not in ROUTABLE:
            return None
        h = ctx.cred_hash  # computed once per event (``Context.credential_hash``)
        if h < 0:
            h = ctx.credential_hash(cred)
        entries = self.recent.get(h)
        if entries is None or self._multi_homed(h):
            return None  # (no entry: no other network to compare with)
        label = network_label(event)
        window = self.window
        ts = ctx.ts
        public = event.network == "public"
        for entry in entries:
            if entry[0] == label or abs(ts - entry[1]) > window:
                continue
            if public or (len(entry) > 2 and entry[2] == "public"):
                return entry
        return None

    def _multi_homed(self, h: int) -> bool:
        packed = self.multi.get(h)
        return packed is not None and packed & 0xFF >= self.settings.accept_windows

    def _concurrent_signal(self, event: Event, ctx: Context, other: list) -> Signal:
        label = network_label(event)
        apart = span_words(abs(ctx.ts - other[1]))
        return Signal(
            detector="credential.concurrent_networks",
            score=CONCURRENT_SCORE,
            observed=f"{label} and {other[0]} within {apart}",
            baseline="this credential was never used from two networks at once",
            sentence=f"credential {event.credential_id} used from {label} and from {other[0]} "
            f"{apart} apart",
            value=event.credential_id or "",
            details={"networks": sorted((label, other[0]))},
        )

    def _outside_signal(self, event: Event, reason: str) -> Signal:
        label = network_label(event)
        known = len(self.egress.d)
        if pod_token(event):
            what, held_by = "service-account token", "pods"
            observed = f"service-account token from {label}"
        else:
            what, held_by = "temporary instance credentials", "instances"
            observed = f"instance credentials (session {event.session or '?'}) from {label}"
        return Signal(
            detector="credential.instance_outside_cloud",
            score=OUTSIDE_SCORE,
            observed=observed,
            baseline=f"{known} known egress prefix(es) for this identity's {held_by}",
            sentence=f"{what} used from {label} ({event.network}), {reason}",
            value=label,
        )

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Remember networks per credential; count concurrency; learn egress prefixes."""
        cred = event.credential_id
        network = event.network
        found = ctx.cred_other  # what ``score`` saw, when it ran for this event
        if found is None:
            use = self._uses.get((cred, event.network_prefix, network))
            other = None if use is not None and use[1] else -1  # -1: not looked for yet
            instance = -1  # not looked at yet
        else:
            other, use, instance = found
        if use is not None and other is None:
            entry = use[0]  # a known use, not concurrent: ``_remember`` written out
            ts = int(ctx.ts)
            if ts > entry[1]:
                entry[1] = ts
        elif cred and network in ROUTABLE:
            if other == -1:
                other = self._concurrent(event, ctx)
            h = ctx.cred_hash
            if h < 0:
                h = ctx.credential_hash(cred)
            if other is not None:
                self._count_concurrency(h, ctx)
            self._remember(h, network_label(event), network, ctx, event)
        if network not in INSIDE_CLASSES:
            if instance == -1:
                instance = is_instance_credential(event)
            if instance:  # instance credentials used outside
                self._learn_egress(event, ctx, held)
        if not self.delivery_seen and event.attributes and event.attributes.get(
                "ec2_role_delivery"):
            self.delivery_seen = True

    def _count_concurrency(self, h: int, ctx: Context) -> None:
        packed = self.multi.get(h)
        if ctx.learning:
            self.multi[h] = (ctx.bucket << 8) | self.settings.accept_windows
            return
        windows, last = (0, -1) if packed is None else (packed & 0xFF, packed >> 8)
        if ctx.bucket != last:
            windows = min(windows + 1, 0xFF)
        self.multi[h] = (max(ctx.bucket, last) << 8) | windows

    def _remember(self, h: int, label: str, klass: str, ctx: Context, event: Event) -> None:
        entries = self.recent.get(h)
        ts = int(ctx.ts)
        if entries is not None:
            for entry in entries:
                if entry[0] == label:
                    if ts > entry[1]:
                        entry[1] = ts
                    self._keep_use(event, entries, entry)
                    return
        else:
            if len(self.recent) >= CREDENTIAL_CAP:
                # the credential whose latest use is oldest (then the smallest hash), with
                # the latest use read at C speed (``_USE_TS``)
                oldest = min([(max(map(_USE_TS, uses)), k)
                              for k, uses in self.recent.items()])[1]
                del self.recent[oldest]
                self.multi.pop(oldest, None)
            entries = self.recent[h] = []
        entries.append([label, ts, klass])
        if len(entries) > NETWORKS_PER_CREDENTIAL:
            entries.remove(min(entries, key=lambda e: (e[1], e[0])))
        self._uses = {}  # an entry added (and maybe one dropped): see ``__init__``

    def _keep_use(self, event: Event, entries: list[list], entry: list) -> None:
        """Keep this use of an existing entry for the next calls (see ``__init__``)."""
        uses = self._uses
        if len(uses) >= USES_CAP:
            uses.clear()
        quiet = event.network != "public"
        if quiet:  # and no other entry of the credential is public (``any`` written out)
            for e in entries:
                if e is not entry and len(e) > 2 and e[2] == "public":
                    quiet = False
                    break
        uses[(event.credential_id, event.network_prefix, event.network)] = (entry, quiet)

    @staticmethod
    def _shared_egress(event: Event, ctx: Context, h: int) -> bool:
        """Whether other identities' instance credentials of the tenant use this prefix."""
        peers = ctx.peers
        return peers is not None and peers.count(_egress_scope(event), EGRESS, h) > 0

    def _learn_egress(self, event: Event, ctx: Context, held: bool) -> None:
        h = vhash(network_label(event))
        table = self.egress
        if h not in table.d and not ctx.learning and not self._shared_egress(event, ctx, h):
            if not table.hold(h, ctx.bucket, self.settings.accept_windows):
                return
        if table.learn(h, ctx.hour, ctx.degradations, EGRESS) and ctx.peers is not None:
            ctx.peers.note_shared(_egress_scope(event), EGRESS, h)

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        if detector == "credential.concurrent_networks":
            self.multi[vhash(value)] = (ctx.bucket << 8) | self.settings.accept_windows
            return True
        if detector == "credential.instance_outside_cloud":
            self.egress.learn(vhash(value), ctx.hour, ctx.degradations, "instance_egress")
            return True
        return False

    def size_estimate(self) -> int:
        nets = 0
        for entries in self.recent.values():
            nets += len(entries)
        return 60 + 30 * nets + 12 * len(self.multi) + self.egress.size_estimate()

    def to_state(self) -> dict:
        return {
            "r": [[k, v] for k, v in self.recent.items()],
            "m": [[k, v] for k, v in self.multi.items()],
            "e": self.egress.to_state(),
            "d": int(self.delivery_seen),
        }

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> CredentialModel:
        model = cls(settings)
        model.recent = {k: [list(e) for e in v] for k, v in state["r"]}
        model.multi = {k: v for k, v in state["m"]}
        model.egress = ValueTable.from_state(state["e"], EGRESS_CAP)
        model.delivery_seen = bool(state["d"])
        return model

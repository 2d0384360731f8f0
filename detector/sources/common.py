"""Small helpers shared by every source: time parsing, network classes, user-agent families.

Everything here runs on the hot path, so the rules are plain string tests (``startswith``,
``in``) with bounded per-value caches instead of regular expressions. None of these helpers
raises on odd input: a value that cannot be understood gives ``None`` or ``"unknown"``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from datetime import datetime, timezone
from typing import Any

import orjson

from detector.errors import InputError, NhiError
from detector.event import EVENT_FIELDS
from detector.identity import AI_AGENT_FAMILIES

logger = logging.getLogger(__name__)

UTC = timezone.utc
# Event times outside these years are refused (bad_time). No cloud audit log predates 2000,
# while 1970-01-01 is what an unset time field or a zero epoch turns into: accepted, one such
# record made its identity's history 20,000 days long (its learning period met at once) and
# named 1970 as its first use. Year 1 or 9999 with an offset cannot even be converted to UTC.
MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_USER_AGENT = 512
TIME_LEAP_SECONDS = 86400.0
"""How far outside its stream's event times a record may be before the records after it
must confirm it (``parser.Parser._place``, ``stages.StageMerger``). A day: CloudTrail
delivers within about 15 minutes, and a quiet account whose logs resume after a longer gap
confirms the jump with its next record."""
# Field bounds, in characters. A value that becomes a model key is kept in every capped
# table of its identity, so an unbounded one (a 200 KB eventName) left per-identity state
# with no byte bound. Fields that identify a record (who, what, where) have limits no real
# log reaches; a record over one is an ``oversized_field`` dead letter, because a cut name
# would be a different name. Free text (user agent, resource, region, error) is cut, and the
# event says so in ``attributes["cut"]`` (field -> length before the cut).
MAX_IDENTITY = 2048
"""An identity or principal: IAM ARNs are at most 2,048 characters (IAM quotas), GCP
principal e-mails at most 254, workload-identity subjects and EKS usernames (role ARNs)
shorter than an ARN's limit."""
MAX_OPERATION = 256
"""An operation: AWS eventName (API names are under 100), GCP methodName (the longest
gRPC and REST method names are under 150)."""
MAX_SERVICE = 128
"""A service: AWS eventSource and GCP serviceName are host names under 64 characters."""
MAX_TENANT = 128
"""A tenant: AWS account ids are 12 digits, GCP project ids at most 30 characters, EKS
and GKE cluster names at most 100 and 40."""
MAX_CREDENTIAL = 128
"""A credential id: IAM access key ids are 16 to 128 characters; GCP key ids are 40."""
MAX_EVENT_ID = 256
"""A record's own id: CloudTrail eventID and Kubernetes auditID are UUIDs, GCP insertIds
shorter still; ids are kept in the duplicate checks and the stage merger."""
MAX_VERB = 64
"""A Kubernetes verb: ``get`` ... ``deletecollection``; custom verbs are short words."""
MAX_K8S_NAME = 253
"""A Kubernetes resource or subresource: a DNS subdomain, at most 253 characters."""
MAX_HOST = 253
"""A caller that is not an address: a DNS name is at most 253 characters."""
MAX_RESOURCE = 512
MAX_REGION = 64
MAX_ERROR = 128
CUT = "cut"
"""``Event.attributes`` key: the fields cut to their bound, with their length before."""
_CACHE_LIMIT = 50_000
MAX_CACHED_KEY = 512
"""Characters: a longer key is worked out each time, not kept, so the caches' memory is
bounded by their size in bytes as well as in entries."""


def remember(cache: dict, key: Any, value: Any, size: int, limit: int = _CACHE_LIMIT) -> Any:
    """Keep ``value`` under ``key`` in one of the sources' caches of pure results, unless
    the key is longer than ``MAX_CACHED_KEY`` (``size``); a full cache starts over."""
    if size <= MAX_CACHED_KEY:
        if len(cache) >= limit:
            cache.clear()
        cache[key] = value
    return value

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


# The hot-path sources build Events positionally: with 29 fields, keyword construction
# costs about 3 us more per event (measured), a fifth of the CloudTrail budget. This pins
# the order those calls rely on; a reordered Event fails at import, not silently.
EVENT_POSITIONAL_ORDER = (
    "event_id", "time", "ts", "source", "identity", "identity_kind", "kind_reason",
    "identity_resolution", "principal_type", "tenant", "target_tenant", "credential_id",
    "credential_type", "session", "actor", "action", "resource", "region", "source_ip",
    "network", "network_prefix", "user_agent", "agent_family", "outcome", "error_code",
    "read_only", "partial", "attributes")
if EVENT_FIELDS[: len(EVENT_POSITIONAL_ORDER)] != EVENT_POSITIONAL_ORDER:  # pragma: no cover
    raise ImportError("detector.event.Event fields changed order; update the positional "
                      "Event(...) calls in detector/sources (cloudtrail, gcp)")


class RecordError(InputError):
    """A record that cannot become an event; ``reason`` is a dead-letter reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.message = message


class SkipRecord(NhiError):
    """A record that is valid but is not an identity event (digest, insight, control)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def oversized(field: str, value: str, limit: int) -> RecordError:
    """The dead letter of a record whose identifying ``field`` is over its ``limit``."""
    return RecordError("oversized_field", f"{field} is {len(value):,} characters, over the "
                                          f"{limit:,} no real audit log writes")


def cut(value: str, limit: int, field: str, attributes: dict[str, Any]) -> str:
    """``value`` cut to ``limit`` characters; a cut is noted in ``attributes["cut"]``."""
    if len(value) <= limit:
        return value
    attributes.setdefault(CUT, {})[field] = len(value)
    return value[:limit]


def bounded_name(value: Any, limit: int, field: str) -> str:
    """An identifying name (a method, a service): ``unknown`` when missing or not a string,
    an ``oversized_field`` dead letter when longer than ``limit``."""
    if not isinstance(value, str) or not value:
        return "unknown"
    if len(value) > limit:
        raise oversized(field, value, limit)
    return value


def free_text(value: Any, limit: int, field: str, attributes: dict[str, Any]) -> str | None:
    """A descriptive string (a resource name, a region) cut to ``limit``, the cut noted;
    ``None`` when missing or not a string."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= limit else cut(value, limit, field, attributes)


def note_agent_cut(raw: str, attributes: dict[str, Any]) -> None:
    """Note in ``attributes`` that ``user_agent`` cut ``raw`` (called only when ``raw`` is
    longer than ``MAX_USER_AGENT``: the brackets it strips may leave it within the bound)."""
    cleaned = raw.strip()
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    if len(cleaned) > MAX_USER_AGENT:
        attributes.setdefault(CUT, {})["user_agent"] = len(cleaned)


# ---------------------------------------------------------------------------- time


def parse_time(value: Any) -> datetime | None:
    """Parse an event time into a tz-aware UTC datetime, or ``None``; never raises.

    Accepts ISO 8601 with 0-9 fractional digits, ``Z`` or offsets, a space instead of
    ``T`` (Panther), naive values (taken as UTC), epoch seconds or milliseconds as numbers,
    and the ``"Nov 18, 2017 1:21:51 AM"`` form found inside CloudTrail payloads. A time
    outside ``MIN_YEAR``-``MAX_YEAR`` (in UTC) gives ``None``.
    """
    if isinstance(value, str):
        when = _parse_time_str(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = _parse_epoch(float(value))
    else:
        return None
    if when is None or not MIN_YEAR <= when.year <= MAX_YEAR:
        return None
    return when


def iso_time(ts: float) -> str:
    """``2026-11-15T00:24:49Z`` for epoch seconds (messages, dead letters)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time_str(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return _parse_time_fallback(text.strip())
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    if when.utcoffset():
        try:
            return when.astimezone(UTC)
        except (OverflowError, ValueError):  # year 1 or 9999 moved past the calendar's end
            return None
    return when


def _parse_time_fallback(text: str) -> datetime | None:
    if not text:
        return None
    # isdecimal, not isdigit: float() reads every decimal digit, but a superscript such as
    # "²" passes isdigit and made float() raise out of this never-raising function
    if text[0].isdecimal() and text.replace(".", "", 1).isdecimal():
        return _parse_epoch(float(text))
    if text[:3].lower() in _MONTHS:
        return _parse_month_name(text)
    return None


def _parse_month_name(text: str) -> datetime | None:
    """``Nov 18, 2017 1:21:51 AM`` and ``Oct 8, 2024, 4:15:32 PM`` (UTC assumed)."""
    parts = text.replace(",", " ").split()
    if len(parts) != 5:
        return None
    month, day, year, clock, half = parts
    try:
        hour, minute, second = (int(piece) for piece in clock.split(":"))
        hour = hour % 12 + (12 if half.upper() == "PM" else 0)
        return datetime(int(year), _MONTHS[month[:3].lower()], int(day), hour, minute, second,
                        tzinfo=UTC)
    except (ValueError, KeyError):
        return None


def _parse_epoch(number: float) -> datetime | None:
    if number != number or number <= 0:
        return None
    if number > 1e14:  # microseconds
        number /= 1e6
    elif number > 1e11:  # milliseconds
        number /= 1e3
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- network

# Per-value caches; the CloudTrail hot path reads them directly before calling the helper.
NETWORK_CACHE: dict[str, tuple[str | None, str, str | None]] = {}

# Internal address space only (RFC 1918, CGNAT, loopback, link-local, ULA). Python's
# ``is_private`` also covers documentation ranges such as 203.0.113.0/24, which real logs
# and tests use as public addresses, so it is not used here.
_PRIVATE_NETWORKS = {
    4: tuple(ipaddress.ip_network(net) for net in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
        "169.254.0.0/16")),
    6: tuple(ipaddress.ip_network(net) for net in ("fc00::/7", "fe80::/10", "::1/128")),
}

# Non-address caller values that still tell where the call came from.
_INTERNAL_CALLERS = frozenset({"aws internal", "private", "gce-internal-ip", "internal"})


def classify_network(value: Any) -> tuple[str | None, str, str | None]:
    """``(source_ip, network, network_prefix)`` for a caller address or service name.

    A valid address gives ``public`` or ``private`` with its /24 or /48 prefix; an AWS or
    Google service host name gives ``cloud_service`` with the host as prefix; ``AWS
    Internal``, ``private`` and ``gce-internal-ip`` give ``internal``; anything else
    (anonymised, invalid, empty) gives ``unknown`` with no address.
    """
    if not isinstance(value, str) or not value:
        return None, "unknown", None
    hit = NETWORK_CACHE.get(value)
    if hit is None:
        hit = remember(NETWORK_CACHE, value, _classify_network(value), len(value))
    return hit


def _classify_network(value: str) -> tuple[str | None, str, str | None]:
    text = value.strip()
    if len(text) > MAX_HOST:  # no address or host name is this long: not a network key
        return None, "unknown", None
    dotted = _dotted_quad(text)
    if dotted is not None:
        return dotted
    lowered = text.lower()
    if lowered in _INTERNAL_CALLERS:
        return None, "internal", lowered.replace(" ", "-")
    if lowered.endswith((".amazonaws.com", ".googleapis.com", ".google.com")):
        return None, "cloud_service", lowered
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None, "unknown", None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix_len = 24 if address.version == 4 else 48
    prefix = str(ipaddress.ip_network(f"{address}/{prefix_len}", strict=False))
    private = any(address in network for network in _PRIVATE_NETWORKS[address.version])
    return str(address), "private" if private else "public", prefix


def _dotted_quad(text: str) -> tuple[str, str, str] | None:
    """``_classify_network`` of a plain IPv4 address, with integers instead of ``ipaddress``.

    Each new address of a replay went through ``ipaddress`` (about 50 us in a replay's
    cold caches, 0.14 s of CPU over replay_data's 2,500 addresses). The address is taken
    only in the form ``ipaddress`` reads as IPv4 (four decimal octets of one to three ASCII
    digits, no leading zero, none above 255), whose canonical text is then the input
    itself; anything else (IPv6, names, odd forms) is ``None`` and takes the general path.
    The private ranges are ``_PRIVATE_NETWORKS[4]``, written out.
    """
    parts = text.split(".")
    if len(parts) != 4:
        return None
    octets = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or (
                part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        octets.append(octet)
    first, second = octets[0], octets[1]
    private = (first == 10 or first == 127 or (first == 172 and 16 <= second <= 31)
               or (first == 192 and second == 168) or (first == 100 and 64 <= second <= 127)
               or (first == 169 and second == 254))
    prefix = f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"
    return text, "private" if private else "public", prefix


# ---------------------------------------------------------------------------- user agents

_FAMILIES: tuple[tuple[str, str], ...] = AI_AGENT_FAMILIES + (
    ("s3console", "console"),  # "[S3Console/0.4, aws-internal/3 ...]": the S3 console
    ("aws-internal", "aws-internal"),
    ("aws internal", "aws-internal"),
    ("terraform", "terraform"),
    ("hashicorp", "terraform"),
    ("pulumi", "pulumi"),
    ("cloudformation", "cloudformation"),
    ("aws-cli", "aws-cli"),
    ("aws-sdk-go", "aws-sdk-go"),
    ("aws-sdk-java", "aws-sdk-java"),
    ("aws-sdk-js", "aws-sdk-js"),
    ("aws-sdk-nodejs", "aws-sdk-js"),
    ("aws-sdk-dotnet", "aws-sdk-dotnet"),
    ("aws-sdk-ruby", "aws-sdk-ruby"),
    ("aws-sdk-python", "boto3"),
    ("boto3", "boto3"),
    ("botocore", "boto3"),
    ("aws-sdk-", "aws-sdk"),
    ("stratus-red-team", "stratus-red-team"),
    ("signin.amazonaws.com", "console"),
    ("console.amazonaws.com", "console"),
    ("console.ec2.amazonaws.com", "console"),
    ("aws-console", "console"),
    ("awsconsole", "console"),
    (".amazonaws.com", "aws-service"),
    ("kubectl", "kubectl"),
    ("helm", "helm"),
    ("kube-controller-manager", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("kubelet", "kubelet"),
    ("google-cloud-sdk", "gcloud"),
    ("gcloud", "gcloud"),
    ("google-api-go-client", "google-api-client"),
    ("google-api-python-client", "google-api-client"),
    ("grpc-", "grpc"),
    ("azure-cli", "azure-cli"),
    ("azurepowershell", "azure-powershell"),
    ("azure-sdk", "azure-sdk"),
    ("azsdk", "azure-sdk"),
    ("python-requests", "python-requests"),
    ("openapi-generator/", "openapi-client"),  # the Kubernetes Python client among them
    ("go-http-client", "go-http"),
    ("curl/", "curl"),
    ("wget/", "wget"),
    ("postmanruntime/", "postman"),
    ("httpie/", "httpie"),
    ("mozilla/", "browser"),
)
HAND_FAMILIES = frozenset({"kubectl", "python-requests", "openapi-client", "curl", "wget",
                           "postman", "httpie", "browser"})
"""Families of clients a person or a script drives, never a controller (whose user agent is
its own binary's): what ``detector.techniques.k8s`` tells an informer's list apart by."""
USER_AGENT_CACHE: dict[str, tuple[str, str]] = {}


def user_agent(value: Any) -> tuple[str | None, str | None]:
    """``(cleaned user agent, family)``; brackets stripped, length capped, never raises."""
    if not isinstance(value, str) or not value:
        return None, None
    hit = USER_AGENT_CACHE.get(value)
    if hit is None:
        cleaned = value.strip()
        if cleaned.startswith("[") and cleaned.endswith("]"):
            cleaned = cleaned[1:-1]
        cleaned = cleaned[:MAX_USER_AGENT]
        hit = remember(USER_AGENT_CACHE, value, (cleaned, _family(cleaned.lower())),
                       len(value))
    return hit


def _family(lowered: str) -> str:
    if not lowered:
        return "none"
    for needle, family in _FAMILIES:
        if needle in lowered:
            return family
    return "other"


# ---------------------------------------------------------------------------- misc


class RecentMap:
    """A bounded map of recently added keys: two generations of at most ``limit`` each.

    Evicting "the oldest key" from a plain dict (``del d[next(iter(d))]``) rescans the
    deleted slots at its front on every call and was measured at 20 us per insert once full;
    here a full generation is simply dropped, so every operation is O(1) and memory stays
    under ``2 * limit`` entries. Values must not be None.
    """

    __slots__ = ("limit", "_new", "_old")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._new: dict[Any, Any] = {}
        self._old: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        hit = self._new.get(key)
        return self._old.get(key) if hit is None else hit

    def __contains__(self, key: Any) -> bool:
        return key in self._new or key in self._old

    def add(self, key: Any) -> bool:
        """Remember ``key``; False when it was already there (one call on the hot path).

        ``setdefault`` looks up and inserts with one hash of the key (a tuple of four or
        five fields, hashed afresh each time); the size tells whether it was new. The old
        generation is looked in only when it holds keys (a tuple's hash is not cached: each
        look-up hashes it again)."""
        old = self._old
        if old and key in old:
            return False
        new = self._new
        size = len(new)
        new.setdefault(key, True)
        if len(new) == size:
            return False
        if size + 1 >= self.limit:
            self._old, self._new = new, {}
        return True

    def put(self, key: Any, value: Any = True) -> None:
        self._new[key] = value
        if len(self._new) >= self.limit:
            self._old, self._new = self._new, {}

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

_READ_PREFIXES = ("get", "list", "describe", "search", "lookup", "read", "watch", "head",
                  "query", "batchget", "testiampermissions", "check", "view", "select")
_WRITE_PREFIXES = ("create", "delete", "update", "put", "set", "insert", "patch", "add",
                   "remove", "attach", "detach", "modify", "run", "start", "stop", "terminate",
                   "write", "generate", "sign", "enable", "disable", "upload", "reset",
                   "assume", "grant", "revoke", "tag", "untag", "import", "export")


def read_only_from_operation(operation: str) -> bool | None:
    """Guess whether an operation only reads from its verb (last dotted or slashed part)."""
    last = operation.rsplit(".", 1)[-1].rsplit("/", 1)[-1].lower()
    if last.startswith(_READ_PREFIXES):
        return True
    if last.startswith(_WRITE_PREFIXES) or last == "action":
        return False
    return None


def record_digest(record: Any) -> str:
    """A stable id for a record that has none: ``sha256:`` and 32 hex digits."""
    try:
        data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        data = repr(record).encode("utf-8", "replace")
    return f"sha256:{hashlib.sha256(data).hexdigest()[:32]}"


def short_str(value: Any, limit: int = 512) -> str | None:
    """A string value capped at ``limit`` characters, or None for anything else."""
    if isinstance(value, str) and value:
        return value[:limit]
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a dict, else an empty dict (records are type-unstable)."""
    return value if isinstance(value, dict) else {}


def as_bool(value: Any) -> bool | None:
    """``True``/``False`` from a bool or the strings ``"true"``/``"false"``; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return None

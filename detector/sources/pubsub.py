"""Transports that carry GCP audit logs to a reader: Pub/Sub deliveries and Splunk HEC events.

A Cloud Logging sink that routes to a Pub/Sub topic publishes each LogEntry as the
base64 ``data`` of one message. A reader then meets it in one of these shapes, each told
here by its keys alone (the parser unwraps them in ``Parser._pubsub``):

- a push request: ``{"message": {"data", "attributes", "messageId", "publishTime"},
  "subscription": "projects/p/subscriptions/s"}`` (push endpoints and Eventarc; the message
  fields come in camelCase and snake_case twins);
- a pull response ``{"receivedMessages": [{"ackId", "message", "deliveryAttempt"}]}``, or
  its list of received messages alone (``gcloud pubsub subscriptions pull --format=json``);
- a message on its own, ``{"data", "messageId", "publishTime", "attributes"}``, as a tool
  that stores messages writes it; ``data`` may already be decoded into an object (the
  Pub/Sub-to-Splunk Dataflow template with ``includePubsubMessage``).

A Splunk HTTP Event Collector event, ``{"event": LogEntry, "time", "host", "source",
"sourcetype", "index", "fields"}``, is what that Dataflow template sends; its ``event`` (an
object, or the entry as JSON text) is the record.

The shapes are matched strictly (no keys but theirs) so that an audit record that happens
to have a ``message``, ``data`` or ``event`` field is never taken for a wrapper.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

# The outer keys of a push request and of a pull response's received message.
DELIVERY_KEYS = frozenset({"message", "subscription", "ackId", "ack_id", "deliveryAttempt",
                           "delivery_attempt"})
PULL_KEYS = frozenset({"receivedMessages", "received_messages"})
MESSAGE_KEYS = frozenset({"data", "attributes", "messageId", "message_id", "publishTime",
                          "publish_time", "orderingKey", "ordering_key"})
# Fields only the Pub/Sub service sets: a bare ``data`` object without one is not a message.
_SERVICE_KEYS = frozenset({"messageId", "message_id", "publishTime", "publish_time"})
HEC_KEYS = frozenset({"event", "time", "host", "source", "sourcetype", "index", "fields"})
_URLSAFE = b"-_"


def message_of(value: dict[str, Any]) -> dict[str, Any] | None:
    """The Pub/Sub message ``value`` is or carries, or None when it is neither."""
    message = value.get("message")
    if isinstance(message, dict) and value.keys() <= DELIVERY_KEYS and \
            ("data" in message or "attributes" in message):
        return message
    if "data" in value and value.keys() <= MESSAGE_KEYS and \
            not _SERVICE_KEYS.isdisjoint(value):
        return value
    return None


def decode_data(data: str) -> bytes | None:
    """The bytes of a message's ``data``: base64 (standard, or the URL-safe alphabet), or
    JSON text a tool left undecoded (``{`` or ``[`` is in neither alphabet, so the two
    cannot be confused); None when it is neither."""
    text = data.strip()
    if text[:1] in ("{", "["):  # a lone surrogate stays, for the JSON decoder to refuse
        return text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(text, altchars=_URLSAFE, validate=True)
    except (binascii.Error, ValueError):
        return None


def hec_event(value: dict[str, Any]) -> dict[str, Any] | str | None:
    """The ``event`` of a Splunk HEC event, when it may hold a record (an object, or text
    that starts like JSON), else None."""
    event = value.get("event")
    if not value.keys() <= HEC_KEYS:
        return None
    if isinstance(event, dict):
        return event
    if isinstance(event, str) and event.lstrip()[:1] in ("{", "["):
        return event
    return None

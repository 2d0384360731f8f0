"""nhi-detector core: behavioural anomaly detection for machine identities.

Reading order for a newcomer:

1. ``detector.event``     the normalised ``Event`` every source produces (the contract).
2. ``detector.sources``   readers and one parser module per log format; dead letters.
3. ``detector.identity``  canonical identity keys, kinds with reasons, owners.
4. ``models``             per-identity incremental models that turn events into ``Signal``s.
5. ``detector.scoring``   fuse signals, weigh by action sensitivity and peers, severity.
6. ``detector.alerts``    alert records, dedup/grouping/cooldown, suppression, OCSF.
7. ``detector.engine``    the ``Detector`` that glues 3–6 together, used by both harnesses.
8. ``detector.replay``    the embedded harness (files in event-time order, report).
9. ``streams``            the Faust harness on Kafka; it only moves data.
10. ``detector.metrics``  Prometheus metrics, read from ``detector.stats`` counters.
"""

__version__ = "0.1.0"

"""Incremental per-identity models: each turns one aspect of an identity's history into
``Signal``s. Small, deterministic for a seed, serialisable with a version tag, bounded.

Reading order:

1. ``base`` — the ``Signal`` contract (score in [0, 1], plain sentence, value);
2. ``settings`` — every knob, its default and why;
3. ``profile`` — ``IdentityProfile``: the score-then-learn loop, learning period,
   poisoning policy, state blob and size cap;
4. the models it runs, each with its scoring and hold-out policy in its docstring:
   ``novelty`` (on ``table``), ``volume`` (windows; uses ``multivariate``), ``schedule``,
   ``dormancy``, ``credential``;
5. ``peers`` — the shared ``PeerIndex``; ``context`` and ``common`` — plumbing.
"""

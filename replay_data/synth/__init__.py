"""Building blocks of the replay-data generator (``replay_data/generate.py``).

Reading order: ``core`` (random helpers, the ``Identity``/``Session``/``Call`` records),
``world`` (accounts, networks, user agents), ``archetypes`` and ``k8s_gcp`` (who does what,
when), ``scenarios`` (the labelled attacks), then the record builders ``aws``, ``k8s``,
``gcp`` and the file ``writers``. Standard library only, deterministic for a given seed.
"""

"""Incremental per-identity models: each turns one aspect of an identity's history into
``Signal``s. Small, deterministic for a seed, serialisable with a version tag, bounded."""

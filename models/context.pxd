# Compiled build only (see docs/architecture.md, "Compiled build"): types for context.py.
# Hours, buckets and days come from datetime timestamps (years 1 to 9999), so they fit in
# 64 bits; counts are bounded by the events of one identity.

cdef class Context:
    cdef public object ts
    cdef public long long hour, bucket, day
    cdef public bint learning
    cdef public object first_ts, last_ts
    cdef public long long n_events
    cdef public object peers
    cdef public object group
    cdef public object degradations, values
    cdef public long long novel
    cdef public object window, pending
    cdef public long long cred_hash
    cdef public object cred_other

    cpdef long long credential_hash(self, credential_id) except? -2

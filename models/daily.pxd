# Compiled build only (see docs/architecture.md, "Compiled build"): types for daily.py.
# Days come from datetime timestamps (see context.pxd); counts are bounded by the events
# of one identity.
from models.context cimport Context


cdef class DailyModel:
    cdef public object settings
    cdef public long long day, count, learned, emitted
    cdef public double mean, var, peak, limit, decay
    cdef public list run

    cpdef double day_score(self, long long calls) except? -1.0
    cpdef list score(self, event, Context ctx, bint held=*)
    cpdef learn(self, event, Context ctx, bint held)
    cpdef long long size_estimate(self) except? -1

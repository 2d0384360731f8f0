# Compiled build only (see docs/architecture.md, "Compiled build"): types for schedule.py.
# Days and hours fit in 64 bits (timestamps of years 1 to 9999).
from models.context cimport Context


cdef class ScheduleModel:
    cdef public object settings, slots, hod, days
    cdef public dict held
    cdef public long long horizon_days, _fast_hour, seen, new

    cpdef list score(self, event, Context ctx)
    cpdef learn(self, event, Context ctx, bint held)
    cpdef size_estimate(self)

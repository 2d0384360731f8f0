# Compiled build only (see docs/architecture.md, "Compiled build"): types for schedule.py.
# Days and hours fit in 64 bits (timestamps of years 1 to 9999).
cimport cython

from models.context cimport Context


cpdef long long _context_how(Context ctx)


cdef class ScheduleModel:
    cdef public object settings, slots, hod, days
    cdef public dict held
    cdef public long long horizon_days, _fast_hour, seen, new

    @cython.locals(stored="long long")
    cpdef bint _active(self, long long last_day, long long day) except -1

    cpdef _count_active(self, lasts, long long day)

    cpdef long long _gap(self, long long hour, long long day) except -1

    @cython.locals(gap="long long")
    cpdef long long _nearest(self, lasts, long long at, long long size,
                             long long day) except -1

    cpdef long long _week_gap(self, long long how, long long day) except -1

    cpdef double _settled(self) except? -1.0

    cpdef list _signal(self, Context ctx, long long how, double score, long long active,
                       long long slots, str per)

    cpdef list score(self, event, Context ctx)
    cpdef learn(self, event, Context ctx, bint held)

    @cython.locals(last="long long")
    cpdef _count(self, long long hour, long long day)

    cpdef _set(self, long long how, long long day)

    cpdef long long size_estimate(self) except? -1

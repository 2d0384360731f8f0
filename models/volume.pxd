# Compiled build only (see docs/architecture.md, "Compiled build"): types for volume.py.
# Bucket indexes and counts fit in 64 bits (timestamps of years 1 to 9999); the baselines
# are doubles in both builds, and the float32 slot means are read and written through the
# array's own item type, so every rounding is the one array('f') makes.
cimport cython

from models.context cimport Context
from models.multivariate cimport raw_values


cdef class Bucket:
    cdef public long long n, fails, novel
    cdef public set actions, resources
    cdef public dict emitted


cdef class Reference:
    cdef public long long through, folds, learned
    cdef public double mean, rvar
    cdef public object slot_mean, slot_n, stats, peaks
    cdef public list run
    cdef public object hst, hst_pending
    cdef float[:] _sm
    cdef unsigned short[:] _sn
    cdef double[:] _s, _p

    cpdef bint hst_cold(self) except -1

    @cython.locals(weight=double, slot_mean=double, wd="long long", wd_weight=double,
                   fallback=double)
    cpdef double expected(self, long long slot) except? -1.0


@cython.locals(n="long long", a="long long", res="long long", f="long long", x0=double,
               x1=double, x2=double, x3=double, e1=double, e2=double, e3=double)
cpdef bint _may_spike(Reference ref, Bucket bucket, double expected) except -1


cdef class WindowModel:
    cdef public object settings
    cdef public Reference main
    cdef public dict open
    cdef public long long newest, lag
    cdef public object _cache, _limits_cache, _next_main, _week_slots
    cdef public double bucket_seconds, peak_decay
    cdef public bint _chain_exact

    @cython.locals(slot="long long", warm=bint, expected=double, count="long long",
                   n="long long", weight=double, mean=double, rate=double, sn="long long",
                   a="long long", r="long long", f="long long", m=double, v=double,
                   diff=double, incr=double, p=double, decay=double, slot_mean="float[:]",
                   slot_n="unsigned short[:]", s="double[:]", peaks="double[:]", sm=double)
    cpdef _fold(self, Reference ref, long long index, Bucket bucket)

    @cython.locals(slot_mean="float[:]", slot_n="unsigned short[:]", s="double[:]",
                   peaks="double[:]", decay=double, alpha=double, slot_alpha=double,
                   mean=double, rvar=double, n="long long", p0=double, p1=double,
                   p2=double, p3=double, m0=double, v0=double, m1=double, v1=double,
                   m2=double, v2=double, first="long long", last="long long",
                   keep_alpha=double, slot="long long", sn="long long", sm=double,
                   w=double, keep=double, expected=double, weight=double, wd="long long",
                   wd_weight=double, fallback=double, slot_weight=double, incr=double,
                   count="long long")
    cpdef _fold_zeros(self, Reference ref, long long start, long long stop)

    cpdef list _window_values(self, Bucket bucket, index)

    @cython.locals(capped=bint, index="long long", bucket=Bucket, later=list,
                   stop="long long", start="long long")
    cpdef bint _fold_until(self, Reference ref, long long target, dict pending) except -1

    @cython.locals(target="long long", through="long long")
    cpdef bint _defer(self, long long index) except -1

    @cython.locals(through="long long")
    cpdef bint _can_keep(self, long long index) except -1

    @cython.locals(target="long long", pending=dict)
    cpdef _advance(self, long long newest)

    @cython.locals(index="long long", bucket=Bucket, ref=Reference, n="long long",
                   fails="long long", actions="long long", resources="long long",
                   milestone=bint)
    cpdef list score(self, event, Context ctx)

    @cython.locals(index="long long", bucket=Bucket)
    cpdef learn(self, event, Context ctx, bint held)

    @cython.locals(distinct="long long", bucket=Bucket)
    cpdef long long size_estimate(self) except? -1

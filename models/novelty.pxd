# Compiled build only (see docs/architecture.md, "Compiled build"): types for novelty.py.
# Value hashes are 32-bit; hours, buckets and days fit in 64 bits (see context.pxd); the
# action's pair term is below 2**57 and a pair hash's product below 2**64 (unsigned).
cimport cython

from models.context cimport Context
from models.table cimport ValueTable

cdef long long _COUNT_MASK, _RESOURCE, _ACTION_RESOURCE, _ERROR_CODE, _CRED_NETWORK
cdef long long _TARGET_TENANT
cdef long long _NETWORK, _NETWORK_MASK, _PEER_MASK, _N_TABLES
cdef double _RATE_ALPHA, _SURPRISE_DECADES
cdef tuple _PART_BITS, _WEIGHTS, _NO_PENDING
cdef unsigned long long _PAIR_LEFT, _PAIR_SALT, _PAIR_RIGHT, _MASK32


cdef class _Entry:
    cdef public long long period, epoch, repeats, hour, settled, logged, left
    cdef public dict taught
    cdef public list applied
    cdef public bint teach


@cython.locals(count="long long", last="long long")
cdef _use_known(ValueTable table, h, long long packed, long long hour)

@cython.locals(packed="long long")
cdef bint _fresh(found, long long hour, long long horizon) except -1

cdef inline bint _lazy(long long index) noexcept

cdef unsigned long long _pair_term(unsigned long long left) noexcept

cdef unsigned long long _pair_with(unsigned long long term,
                                   unsigned long long right) noexcept

@cython.locals(v=double)
cpdef double surprise(double p_new) except? -1.0


cdef class NoveltyModel:
    cdef public object settings
    cdef public list tables
    cdef public long long last_prune_day, horizon_h, epoch, log_base, flushed_at
    cdef public dict memo
    cdef public list log, cursors
    cdef public long long low_hour

    @cython.locals(entry=_Entry)
    cpdef flush(self)

    @cython.locals(tables=list, table=ValueTable, repeats="long long", index="long long",
                   uses="long long", count="long long", last="long long", hour="long long",
                   rate=double, d=dict, applied=list, packed="long long")
    cpdef _apply(self, _Entry entry)

    @cython.locals(tables=list, table=ValueTable, d=dict, log=list,
                   base="long long", cursors=list, end="long long", start="long long",
                   i="Py_ssize_t", entry=_Entry, repeats="long long", applied=list,
                   uses="long long", hour="long long", count="long long", last="long long",
                   rate=double, passed="long long", index="long long", packed="long long")
    cpdef _flush_tables(self, tuple indices)

    @cython.locals(horizon="long long", tables=list, table=ValueTable, out=list,
                   index="long long")
    cpdef tuple _unknown_tables(self, list values, long long hour)

    cpdef long long _period(self, long long hour)

    @cython.locals(entry=_Entry)
    cpdef _Entry _remembered(self, sig, long long hour)

    @cython.locals(log=list)
    cdef _log_hit(self, _Entry entry)

    @cython.locals(hour="long long", entry=_Entry, horizon="long long", table=ValueTable,
                   pairs=ValueTable, packed="long long", left="long long",
                   hr_c="unsigned long long")
    cpdef list score(self, event, Context ctx, bint learn_known=*)

    cdef _count_hit(self, _Entry entry, long long hour)

    @cython.locals(hour="long long", horizon="long long", tables=list, table=ValueTable,
                   quiet=bint, failed=bint, teach_any=bint, teach=bint, unflushed=bint,
                   lazy_new=bint, novel_parts="long long", index="long long", out=list,
                   taught=dict, values=list, pending=list, left="long long")
    cpdef list _score_values(self, event, Context ctx, sig, bint learn_known)

    @cython.locals(hour="long long", horizon="long long", quiet=bint, table=ValueTable,
                   pairs=ValueTable, novel_parts="long long", left="long long", out=list,
                   pending=list)
    cpdef list _resource_miss(self, event, Context ctx, _Entry entry, hr, found)

    @cython.locals(table=ValueTable)
    cpdef _novel(self, event, Context ctx, long long index, h, first, second, packed,
                 long long novel_parts)

    @cython.locals(weight=double, score=double)
    cpdef bint _below_floor(self, event, long long index) except -1

    @cython.locals(table=ValueTable, quarantine=bint, before="Py_ssize_t",
                   index="long long")
    cpdef learn(self, event, Context ctx, bint held)

    @cython.locals(table=ValueTable, entry=_Entry, day="long long", oldest="long long",
                   since="long long", low="long long", last="long long")
    cpdef _prune(self, Context ctx)

    @cython.locals(table=ValueTable, total="long long", bloom="long long")
    cpdef long long size_estimate(self) except? -1

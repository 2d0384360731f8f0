# Compiled build only (see docs/architecture.md, "Compiled build"): types for novelty.py.
cimport cython

from models.context cimport Context
from models.table cimport ValueTable


cdef class NoveltyModel:
    cdef public object settings
    cdef public list tables
    cdef public long long last_prune_day, horizon_h, epoch, log_base, flushed_at
    cdef public dict memo
    cdef public list log, cursors

    @cython.locals(tables=list, table=ValueTable, repeats="long long", index="long long",
                   uses="long long", count="long long", last="long long", hour="long long",
                   rate=double, alpha=double, d=dict, applied=list)
    cpdef _apply(self, list entry)

    @cython.locals(tables=list, table=ValueTable, d=dict, alpha=double, log=list,
                   base="long long", cursors=list, end="long long", start="long long",
                   i="Py_ssize_t", entry=list, repeats="long long", applied=list,
                   uses="long long", hour="long long", count="long long", last="long long",
                   rate=double, passed="long long")
    cpdef _flush_tables(self, indices)

    @cython.locals(hour="long long", horizon="long long", table=ValueTable,
                   pairs=ValueTable, tables=list, d=dict, count="long long",
                   last="long long", left="long long", entry=list, log=list,
                   quiet=bint, failed=bint, teach_any=bint, teach=bint, unflushed=bint,
                   novel_parts="long long", index="long long", out=list, taught=dict,
                   values=list)
    cpdef list score(self, event, Context ctx, bint learn_known=*)

    @cython.locals(hour="long long", table=ValueTable, count="long long", last="long long",
                   horizon="long long", quiet=bint, novel_parts="long long",
                   index="long long", log=list, out=list, pending=list, values=list)
    cpdef list _resource_miss(self, event, Context ctx, list entry, hr, packed)

    @cython.locals(table=ValueTable, quarantine=bint, before="Py_ssize_t",
                   index="long long")
    cpdef learn(self, event, Context ctx, bint held)

    @cython.locals(table=ValueTable, total="long long", bloom="long long")
    cpdef size_estimate(self)

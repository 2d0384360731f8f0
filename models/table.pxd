# Compiled build only (see docs/architecture.md, "Compiled build"): types for table.py.
# Counts and totals are bounded by the uses kept in one table; the moving rate is a double
# in both builds.

cdef class ValueTable:
    cdef public object cap
    cdef public dict d
    cdef public long long total, n1, bloom_n
    cdef public object bloom
    cdef public bint lossy
    cdef public dict held
    cdef public double rate
    cdef public object _words

    cpdef double new_probability(self) except? -1.0

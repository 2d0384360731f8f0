# Compiled build only (see docs/architecture.md, "Compiled build"): types for table.py.
# Counts and totals are bounded by the uses kept in one table; the moving rate is a double
# in both builds. Hashes are 32-bit and hours come from datetime timestamps (years 1 to
# 9999), so ``hour << 16 | count`` and the ranking keys of ``evict`` fit in 64 bits (unsigned).
cimport cython

cdef long long _COUNT_MASK, _SPAN_SMALL


cdef class ValueTable:
    cdef public long long cap
    cdef public dict d
    cdef public long long total, n1, bloom_n
    cdef public bytearray bloom
    cdef public bint lossy
    cdef public dict held
    cdef public double rate
    cdef public object _words

    @cython.locals(bloom=bytearray, p="long long")
    cpdef bint in_bloom(self, long long h) except -1

    cpdef double new_probability(self) except? -1.0

    @cython.locals(packed="long long", count="long long", last="long long", found=object)
    cpdef bint learn(self, long long h, long long hour, degradations, name) except -1

    @cython.locals(d=dict, ranked=list, h="long long", packed="long long", last="long long",
                   first="long long", low="long long", high="long long", offset="long long",
                   count="unsigned long long")
    cpdef evict(self, long long n, degradations, name)

    @cython.locals(count="long long")
    cdef _forget_counts(self, long long packed)

    @cython.locals(bloom=bytearray, p="long long")
    cdef _bloom_add(self, long long h, degradations, name)

    @cython.locals(stale=list)
    cpdef long long prune(self, long long oldest_hour) except? -1

    @cython.locals(bloom="long long", held="long long")
    cpdef long long size_estimate(self) except? -1

    @cython.locals(total="long long", frequent_from="long long", infrequent_from="long long",
                   below_frequent="Py_ssize_t", below_infrequent="Py_ssize_t",
                   below_rare="Py_ssize_t", count="long long", packed="long long")
    cpdef summary(self)

# Compiled build only (see docs/architecture.md, "Compiled build"): types for
# multivariate.py. Node indexes, counters and learned counts are bounded; the walk masks
# (a byte per node of all trees) and the pending masses stay Python ints, the scaler stays
# an array('f') read and written through its own float32 items, so every rounding is the
# one the pure Python build makes.
cimport cython


cdef class _Structure:
    cdef public list roots, feature, threshold, left, right, nodes, cuts
    cdef public dict masks

    # the walk's node index stays a Python int: ``1 << 8 * node`` reaches bit 599
    @cython.locals(nodes=list, key="long long", i="Py_ssize_t", cuts=list, x=double,
                   k="long long", t=double, base="long long")
    cpdef object learn_mask(self, list xs)


cpdef _Structure _structure(long long seed)


cpdef list raw_values(calls, fails, actions, resources, novel, hour)


@cython.locals(i="long long", position="long long", value=double, decayed=double)
cpdef _scale_step(scale, list values)


cdef class MultivariateModel:
    cdef public long long seed, counter, learned
    cdef public object lmass, rmass, scale, pending
    cdef public bint first_window

    cpdef MultivariateModel copy(self)

    @cython.locals(i="Py_ssize_t", n="Py_ssize_t", slot="long long", ref=double, out=list,
                   table=tuple, v=double, k="long long", num=double, den=double, w=double,
                   cached=double, floor=double, slots=tuple)
    cpdef list _scaled_values(self, list values)

    @cython.locals(st=_Structure, nodes=list, total="long long", node="long long",
                   depth_pow="long long", r="long long", feature="long long",
                   threshold=double, left="long long", right="long long", value=double)
    cpdef double score_values(self, list values) except? -1.0

    cpdef learn_values(self, list values)

    cpdef double signal_score_values(self, list values) except? -1.0

    cpdef _add_pending(self)

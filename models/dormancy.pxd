# Compiled build only (see docs/architecture.md, "Compiled build"): types for dormancy.py.
from models.context cimport Context


cdef class DormancyModel:
    cdef public object settings
    cdef public dict creds
    cdef public object limit

    cpdef list score(self, event, Context ctx)
    cpdef learn(self, event, Context ctx, bint held)
    cpdef long long size_estimate(self) except? -1

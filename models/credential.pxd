# Compiled build only (see docs/architecture.md, "Compiled build"): types for credential.py.
cimport cython

from models.context cimport Context
from models.table cimport ValueTable


cpdef bint is_instance_credential(event) except -1


cdef class CredentialModel:
    cdef public object settings, window
    cdef public dict recent, multi
    cdef public ValueTable egress
    cdef public bint delivery_seen
    cdef public dict _uses

    cpdef list score(self, event, Context ctx)
    cpdef learn(self, event, Context ctx, bint held)
    @cython.locals(nets="long long", entries=list)
    cpdef long long size_estimate(self) except? -1

# Compiled build only (see docs/architecture.md, "Compiled build"): types for credential.py.
from models.context cimport Context
from models.table cimport ValueTable


cdef class CredentialModel:
    cdef public object settings, window
    cdef public dict recent, multi
    cdef public ValueTable egress
    cdef public bint delivery_seen
    cdef public dict _uses

    cpdef list score(self, event, Context ctx)
    cpdef learn(self, event, Context ctx, bint held)
    cpdef size_estimate(self)

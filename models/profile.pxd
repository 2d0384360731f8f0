# Compiled build only (see docs/architecture.md, "Compiled build"): types for profile.py.
cimport cython

from models.context cimport Context
from models.credential cimport CredentialModel
from models.daily cimport DailyModel
from models.dormancy cimport DormancyModel
from models.novelty cimport NoveltyModel
from models.schedule cimport ScheduleModel
from models.volume cimport WindowModel


cdef class IdentityProfile:
    cdef public object identity, kind, settings, first_ts, last_ts
    cdef public long long n_events
    cdef public object group
    cdef public list models
    cdef public object degradations
    cdef public long long _size_check
    cdef public object _bucket_seconds, _learning_seconds, _learning_events
    cdef public object _thin_seconds, _thin_events
    cdef public long long scored_n
    cdef public object scored_first
    cdef public bint scored_return
    cdef public object _dormant_seconds

    @cython.locals(ctx=Context, novelty=NoveltyModel, window=WindowModel,
                   schedule=ScheduleModel, dormancy=DormancyModel,
                   credential=CredentialModel, daily=DailyModel, n="long long",
                   signals=list, held=bint,
                   novel="long long", top=bint)
    cpdef list observe(self, event, peers=*)

    cpdef Context _context(self, event, peers)

    # called once per hour of event time of every identity (most events of a sparse one)
    @cython.locals(cap=double)
    cpdef _enforce_cap(self, Context ctx)

    @cython.locals(novelty=NoveltyModel, window=WindowModel, schedule=ScheduleModel,
                   dormancy=DormancyModel, credential=CredentialModel, daily=DailyModel)
    cpdef long long size_estimate(self) except? -1

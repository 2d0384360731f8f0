"""One contract, every model: round trip, determinism, key order, missing or new fields,
pure scoring, cold start, documentation (style habit 5; edge cases B22, B23, B25)."""

from __future__ import annotations

import inspect
import math
from collections import Counter

import pytest

from models.common import pack_blob, unpack_blob
from models.context import Context
from models.credential import CredentialModel
from models.daily import DailyModel
from models.dormancy import DormancyModel
from models.multivariate import FEATURES, MultivariateModel, raw_features
from models.novelty import NoveltyModel
from models.schedule import ScheduleModel
from models.settings import ModelSettings
from models.volume import WindowModel
from tests.models.helpers import T0, make_event

EVENT_MODELS = [NoveltyModel, WindowModel, ScheduleModel, DormancyModel, CredentialModel,
                DailyModel]
SETTINGS = ModelSettings(learning_min_events=20, learning_min_days=0.5)


def context(event, learning: bool, last_ts: float | None) -> Context:
    ctx = Context(event.ts, SETTINGS.bucket_seconds)
    ctx.learning = learning
    ctx.first_ts = T0
    ctx.last_ts = last_ts
    ctx.n_events = 1 if last_ts else 0
    ctx.degradations = Counter()
    return ctx


def history(n: int = 400) -> list:
    out = []
    for i in range(n):
        out.append(make_event(
            T0 + i * 150.0, f"s3:Op{i % 4}", resource=f"arn:aws:s3:::b/{i % 7}",
            attributes={"k8s_namespace": "prod", "ec2_role_delivery": "2.0"},
            session="i-0123456789abcdef0",
            outcome="failure" if i % 31 == 0 else "success",
            error_code="AccessDenied" if i % 31 == 0 else None,
        ))
    return out


def trained(cls):
    model = cls(SETTINGS)
    last = None
    for event in history():
        ctx = context(event, learning=event.ts < T0 + 0.5 * 86400, last_ts=last)
        model.score(event, ctx)
        model.learn(event, ctx, held=False)
        last = event.ts
    return model, last


def probes(last_ts: float) -> list:
    ts = last_ts + 60
    return [
        make_event(ts, "s3:Op1", resource="arn:aws:s3:::b/1",
                   attributes={"k8s_namespace": "prod", "ec2_role_delivery": "2.0"},
                   session="i-0123456789abcdef0"),
        make_event(ts + 1, "iam:CreateAccessKey", network="public",
                   network_prefix="198.51.100.0/24", credential_type="long_term",
                   attributes={"ec2_role_delivery": "2.0"}, session="i-0123456789abcdef0"),
        make_event(ts + 90 * 86400, "s3:Op2", region="eu-north-1"),
    ]


def blob(model) -> bytes:
    return pack_blob(1, model.to_state())


def signals_of(model, event, last_ts):
    return model.score(event, context(event, learning=False, last_ts=last_ts))


@pytest.fixture(params=EVENT_MODELS, ids=lambda cls: cls.__name__)
def model_cls(request):
    return request.param


class TestEventModelContract:
    def test_round_trip__same_scores_same_state(self, model_cls):
        model, last = trained(model_cls)
        copy = model_cls.from_state(unpack_blob(blob(model), 1, "test"), SETTINGS)
        assert blob(copy) == blob(model)
        for event in probes(last):
            assert signals_of(copy, event, last) == signals_of(model, event, last)

    def test_same_seed__same_scores(self, model_cls):
        (first, last), (second, _) = trained(model_cls), trained(model_cls)
        for event in probes(last):
            assert signals_of(first, event, last) == signals_of(second, event, last)

    def test_attribute_key_order__irrelevant(self, model_cls):
        model, last = trained(model_cls)
        for event in probes(last):
            flipped = make_event(event.ts, event.action, **{
                k: getattr(event, k) for k in ("resource", "region", "network",
                                               "network_prefix", "credential_type", "session")
            })
            flipped.attributes = dict(reversed(list(event.attributes.items())))
            assert signals_of(model, flipped, last) == signals_of(model, event, last)

    def test_missing_and_new_fields__no_crash(self, model_cls):
        model, last = trained(model_cls)
        bare = make_event(last + 30, "", resource=None, region=None, network="unknown",
                          network_prefix=None, agent_family=None, credential_id=None,
                          tenant=None, attributes={"brand_new_field": [1, 2]})
        for event in (bare, make_event(last + 40, "x:Y", attributes={"ec2_role_delivery": ""})):
            ctx = context(event, learning=False, last_ts=last)
            for s in model.score(event, ctx):
                assert 0.0 <= s.score <= 1.0 and not math.isnan(s.score)
            model.learn(event, ctx, held=False)

    def test_score__never_mutates(self, model_cls):
        model, last = trained(model_cls)
        before = blob(model)
        for event in probes(last):
            first = signals_of(model, event, last)
            assert signals_of(model, event, last) == first
        assert blob(model) == before

    def test_cold_start__numbers_never_none(self, model_cls):
        model = model_cls(SETTINGS)
        event = make_event(T0, "sts:GetCallerIdentity")
        for learning in (True, False):
            scores = [s.score for s in model.score(event, context(event, learning, None))]
            assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in scores)
            assert max(scores, default=0.0) == 0.0 or not learning

    def test_documented(self, model_cls):
        assert inspect.getdoc(model_cls) and inspect.getdoc(inspect.getmodule(model_cls))
        for name in ("score", "learn"):
            assert inspect.getdoc(getattr(model_cls, name)), name


def windows(n: int = 200) -> list[dict[str, float]]:
    return [raw_features(4 + i % 3, i % 11 == 0, 2, 3 + i % 2, 0, i // 6) for i in range(n)]


class TestMultivariateContract:
    def trained(self) -> MultivariateModel:
        model = MultivariateModel(SETTINGS.seed)
        for x in windows():
            model.learn(x)
        return model

    def test_cold__zero_not_none(self):
        model = MultivariateModel(SETTINGS.seed)
        assert model.cold and model.score(windows(1)[0]) == 0.0

    def test_round_trip__same_scores(self):
        model = self.trained()
        state = unpack_blob(pack_blob(1, model.to_state()), 1, "test")
        copy = MultivariateModel.from_state(state, SETTINGS.seed)
        probe = raw_features(40, 30, 12, 40, 3, 3)
        assert copy.score(probe) == model.score(probe)

    def test_same_seed__same_scores(self):
        probe = raw_features(40, 30, 12, 40, 3, 3)
        assert self.trained().score(probe) == self.trained().score(probe)

    def test_key_order_and_missing_new_keys(self):
        model = self.trained()
        probe = raw_features(9, 0, 2, 3, 0, 12)
        reordered = dict(reversed(list(probe.items())))
        assert model.score(reordered) == model.score(probe)
        partial = {k: v for k, v in probe.items() if k != "novel"}
        partial["session_name"] = 123456.0  # new and high-cardinality: ignored
        value = model.score(partial)
        assert 0.0 <= value <= 1.0
        assert set(model.scaled(partial)) == set(FEATURES)

    def test_b23__score_pure(self):
        model = self.trained()
        probe = raw_features(3, 0, 2, 0, 0, 5)
        before = pack_blob(1, model.to_state())
        first = model.score(probe)
        for _ in range(100):
            assert model.score(probe) == first
        assert pack_blob(1, model.to_state()) == before

    def test_documented(self):
        assert inspect.getdoc(MultivariateModel)
        assert inspect.getdoc(MultivariateModel.score) and inspect.getdoc(MultivariateModel.learn)

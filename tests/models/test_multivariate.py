"""The HST window model: river-equivalent scores, scaling into [0, 1], B24/B25 inputs."""

from __future__ import annotations

import json
import math
import random
import warnings

from river.anomaly import HalfSpaceTrees

from models.multivariate import (
    FEATURES, HEIGHT, N_TREES, WINDOW_SIZE, MultivariateModel, _structure, n_nodes, raw_features,
)


def random_windows(n: int, seed: int = 1) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [raw_features(rng.randint(1, 9), rng.randint(0, 2), rng.randint(1, 3),
                         rng.randint(0, 6), rng.randint(0, 1), rng.randint(0, 23))
            for _ in range(n)]


class TestRiverEquivalence:
    def test_scores_equal_plain_river_model_at_every_step(self):
        ours = MultivariateModel(7)
        river = HalfSpaceTrees(n_trees=N_TREES, height=HEIGHT, window_size=WINDOW_SIZE, seed=7)
        probes = random_windows(5, seed=2) + [raw_features(60, 50, 20, 40, 5, 3)]
        for step, x in enumerate(random_windows(3 * WINDOW_SIZE + 5)):
            scaled = ours.scaled(x)
            river.learn_one(scaled)
            ours.learn(x)
            if step % 7 == 0 or step > 2 * WINDOW_SIZE:
                for probe in probes:
                    expected = float(river.score_one(ours.scaled(probe)))
                    assert math.isclose(ours.score(probe), expected, abs_tol=1e-12), step


class TestPendingMasses:
    def test_masses_saved_mid_window__equal_a_node_by_node_walk(self):
        """The window's masses kept as one int (``pending``) are saved exactly as the
        plain walk counts them, node by node."""
        model, st = MultivariateModel(7), _structure(7)
        expected = [0] * n_nodes()
        for i, x in enumerate(random_windows(WINDOW_SIZE + 11, seed=4)):
            xs = model._vector(x)  # scaled as learn scales it (before its scaler update)
            if i >= WINDOW_SIZE:  # the second window, still open
                for node in st.roots:
                    for _ in range(HEIGHT):
                        expected[node] += 1
                        go_left = xs[st.feature[node]] < st.threshold[node]
                        node = st.left[node] if go_left else st.right[node]
                    expected[node] += 1
            model.learn(x)
        assert sum(expected) == 11 * N_TREES * (HEIGHT + 1)
        assert list(model.to_state()["l"]) == expected
        restored = MultivariateModel.from_state(model.to_state(), 7)
        restored.learn(random_windows(1, seed=5)[0])
        model.learn(random_windows(1, seed=5)[0])
        assert list(restored.to_state()["l"]) == list(model.to_state()["l"])


class TestScoringAhead:
    def test_reads__equal_those_of_a_copy_taught_the_windows(self):
        """Score, scaled features and learned count of ``scoring_ahead`` equal a taught
        copy's wherever no window fills up; the model itself is left unchanged."""
        model = MultivariateModel(7)
        probes = random_windows(4, seed=9) + [raw_features(60, 50, 20, 40, 5, 3)]
        history = random_windows(2 * WINDOW_SIZE + 20, seed=6)
        checked = 0
        for step, x in enumerate(history[:-3]):
            model.learn(x)
            pending = history[step + 1:step + 4]
            before = model.to_state()
            ahead = model.scoring_ahead([list(window.values()) for window in pending])
            taught = model.copy()
            for window in pending:
                taught.learn(window)
            if model.counter + len(pending) >= WINDOW_SIZE:
                assert ahead is None
                continue
            checked += 1
            assert ahead.learned == taught.learned
            assert ahead.cold == taught.cold
            for probe in probes:
                assert ahead.score(probe) == taught.score(probe)
                assert ahead.scaled(probe) == taught.scaled(probe)
            after = model.to_state()
            assert [list(after[k]) for k in "lrs"] == [list(before[k]) for k in "lrs"]
        assert checked > WINDOW_SIZE

    def test_copy__learning_one_side_leaves_the_other(self):
        model = MultivariateModel(7)
        for x in random_windows(WINDOW_SIZE + 3, seed=3):
            model.learn(x)
        other = model.copy()
        saved = {k: list(v) if hasattr(v, "tolist") else v for k, v in other.to_state().items()}
        for x in random_windows(WINDOW_SIZE, seed=8):
            model.learn(x)
        state = other.to_state()
        assert {k: list(v) if hasattr(v, "tolist") else v for k, v in state.items()} == saved
        assert model.to_state()["r"] != state["r"]


class TestScaling:
    def test_scaled_features_in_unit_interval(self):
        model = MultivariateModel(1)
        for x in random_windows(100):
            model.learn(x)
        for x in random_windows(50, seed=5) + [raw_features(10**9, 10**9, 10**6, 10**6, 999, 7),
                                               {"calls": float("nan")}, {}]:
            for name, value in model.scaled(x).items():
                assert 0.0 <= value <= 1.0, name

    def test_usual_window_in_lower_half(self):
        model = MultivariateModel(1)
        for _ in range(50):
            model.learn(raw_features(4, 0, 2, 3, 0, 10))
        scaled = model.scaled(raw_features(4, 0, 2, 3, 0, 10))
        assert all(scaled[k] <= 0.5 for k in ("calls", "distinct_actions", "distinct_resources"))


class TestEdgeCases:
    def test_b24_rows__burst_window_scores_above_baseline(self, edge_cases):
        data = json.loads((edge_cases / "B24.json").read_text())
        model = MultivariateModel(42)
        baseline = []
        for row in data["baseline_events"]:
            x = raw_features(row["api_calls"], row["access_denied"], row["distinct_actions"],
                             0, 0, int(row["minute"] // 60))
            x["bytes_out"] = float(row["bytes_out"])  # a raw byte count: never fed in
            baseline.append(model.score(x))
            model.learn(x)
        burst = data["burst_events_sample"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            x = raw_features(len(burst), sum(r["access_denied"] for r in burst),
                             len({r["action"] for r in burst}), 0, len(burst), 10)
            score = model.score(x)
        assert score > max(baseline[-20:])
        assert model.signal_score(x) > 0.0
        assert "bytes_out" not in model.scaled(x)

    def test_b25_feature_dicts__missing_and_new_keys(self, edge_cases):
        data = json.loads((edge_cases / "B25.json").read_text())
        model = MultivariateModel(3)
        for _ in range(2 * WINDOW_SIZE):
            for row in data["feature_dicts"]:
                x = {k: v for k, v in row.items() if isinstance(v, int | float)}
                model.learn(x)
                assert 0.0 <= model.score(x) <= 1.0
        assert set(model.scaled({"region": 1.0})) == set(FEATURES)

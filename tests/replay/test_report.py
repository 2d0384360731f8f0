"""The HTML tuning report: self-contained, with every plot, stating the figures."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from detector.evaluation import Activity, AlertLog, evaluate, parse_labels, threshold_sweep
from detector.report import MAX_TIMELINES, render_report
from detector.stats import RunStats
from detector.summary import build_summary, render_summary

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DAY = 86400.0
ROLE = "arn:aws:iam::111122223333:role/deploy"
OTHER = "arn:aws:iam::111122223333:user/legacy"
LABELS = {
    "version": 1,
    "scenarios": [{"id": "leak", "title": "leaked key <script>", "identities": [OTHER],
                   "start": "2024-01-05T00:00:00Z", "end": "2024-01-05T02:00:00Z"}],
}


def alert(alert_id: str, identity: str, ts: float, score: float, severity: str, detector: str):
    return {
        "alert_id": alert_id, "revision": 1, "identity": {"key": identity},
        "severity": severity, "score": score, "detectors": [detector],
        "window": {"first": ts - 60, "last": ts}, "evidence": {"event_ids": []},
    }


class Collector(HTMLParser):
    """Collects tag names and every src/href attribute value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.svg_titles: list[str] = []
        self._svg_depth = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag == "svg":
            self._svg_depth += 1
            self.svg_titles.append(dict(attrs).get("aria-label", ""))

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg_depth -= 1


def build(scenarios=True):
    stats = RunStats()
    stats.events.update({"aws.cloudtrail": 900, "k8s.audit": 100})
    stats.records_read.update({"aws.cloudtrail": 900, "k8s.audit": 100})
    stats.alerts.update({("high", "novelty.action"): 2, ("low", "volume.rate"): 1})
    activity = Activity()
    for i in range(1000):
        activity.observe(ROLE if i % 2 else OTHER, T0 + i * 600)
    log = AlertLog()
    log.add(alert("a1", OTHER, T0 + 4 * DAY + 600, 0.9, "high", "novelty.action"))
    log.add(alert("a2", ROLE, T0 + 2 * DAY, 0.7, "high", "novelty.action"))
    log.add(alert("a3", ROLE, T0 + 6 * DAY, 0.4, "low", "volume.rate"))
    parsed = parse_labels(LABELS) if scenarios else None
    records = log.records()
    evaluation = evaluate(records, parsed, activity.identity_days()).to_dict() if parsed else None
    summary = build_summary(stats, wall_seconds=0.025, cpu_seconds=0.05,
                            identities={"tracked": 2},
                            alerts=records, alert_lines=log.lines,
                            time_range=activity.time_range(), evaluation=evaluation)
    sweep = threshold_sweep(records, parsed, span_days=7.0)
    page = render_report(summary=summary, alerts=records, sweep=sweep,
                         hourly=activity.hourly, t_range=activity.time_range())
    return page, summary


class TestReport:
    def test_self_contained__no_external_references(self):
        page, _ = build()
        parser = Collector()
        parser.feed(page)
        assert parser.refs == []
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.I)
        assert "<script" not in page.replace("&lt;script", "")
        assert "@import" not in page and "url(" not in page
        assert "link" not in parser.tags

    def test_contains_each_plot(self):
        page, _ = build()
        parser = Collector()
        parser.feed(page)
        titles = parser.svg_titles
        assert "Alerts per day by detector" in titles
        assert "Alerts per day by severity" in titles
        assert "Score distribution of alerts" in titles
        assert "Alerts per day against score threshold" in titles
        assert "Recall and precision against score threshold" in titles
        assert f"Events per hour of {OTHER}" in titles and f"Events per hour of {ROLE}" in titles

    def test_states_throughput_and_quality(self):
        page, summary = build()
        assert summary["throughput"]["events_per_second"] == 40000.0  # 1,000 events / 25 ms
        assert "40,000 events/s" in page
        assert summary["throughput"]["events_per_cpu_second"] == 20000.0
        assert "20,000 events per CPU second" in page
        assert "Quality against the labels" in page
        assert "1 of 1" in page  # scenarios detected
        # the scenario title is escaped, never injected
        assert "leaked key &lt;script&gt;" in page

    def test_alert_markers_on_timelines(self):
        page, _ = build()
        role_plot = page.split(f'aria-label="Events per hour of {ROLE}"')[1].split("</svg>")[0]
        assert role_plot.count('stroke-width="2"') == 2  # a2 and a3

    def test_without_labels__no_recall_plot(self):
        page, summary = build(scenarios=False)
        assert "evaluation" not in summary
        assert "Recall and precision" not in page
        assert "Alerts per day against score threshold" in page

    def test_timelines_capped(self):
        log = AlertLog()
        activity = Activity()
        for i in range(MAX_TIMELINES + 5):
            ident = f"role/{i}"
            activity.observe(ident, T0 + i)
            log.add(alert(f"x{i}", ident, T0 + 3600, 0.5 + i / 1000, "medium", "novelty.action"))
        summary = build_summary(RunStats(), wall_seconds=1.0, alerts=log.records(),
                                time_range=activity.time_range())
        page = render_report(summary=summary, alerts=log.records(), sweep=[],
                             hourly=activity.hourly, t_range=activity.time_range())
        assert page.count('aria-label="Events per hour of') == MAX_TIMELINES
        assert f"{MAX_TIMELINES + 5} identities alerted" in page
        assert f"role/{MAX_TIMELINES + 4}" in page  # the highest score is shown
        assert 'aria-label="Events per hour of role/0"' not in page


def test_sweep_table__every_threshold_with_its_figures():
    page, _ = build()
    rows = re.findall(r"<tr><td>(0\.\d\d|1\.00)</td><td>(\d+)</td><td>([\d.]+)</td>"
                      r"<td>([\d.]+)</td><td>([\d.-]+)</td></tr>", page)
    assert len(rows) == 21
    # 0.55 keeps a1 (0.9, in the scenario) and a2 (0.7, outside it) over the 7 days
    assert ("0.55", "2", "0.29", "1.00", "0.50") in rows
    assert ("0.95", "0", "0.00", "0.00", "-") in rows


def test_sweep_table__per_day_leaves_out_a_long_silence():
    activity = Activity()
    for i in range(7 * 24):
        activity.observe(ROLE, T0 + i * 3600)
    activity.observe(OTHER, T0 + 70 * 365 * DAY)
    log = AlertLog()
    log.add(alert("a1", ROLE, T0 + 2 * DAY, 0.7, "high", "novelty.action"))
    t_range = activity.time_range()
    sweep = threshold_sweep(log.records(), None, (t_range[1] - t_range[0]) / DAY,
                            thresholds=(0.5,))
    summary = build_summary(RunStats(), wall_seconds=1.0, time_range=t_range)
    page = render_report(summary=summary, alerts=log.records(), sweep=sweep,
                         hourly=activity.hourly, t_range=t_range)
    assert "<tr><td>0.50</td><td>1</td><td>0.14</td></tr>" in page  # 1 alert in 7 days
    assert "Alerts per day are over 7.0 days of event time" in page


def test_sweep_table__without_labels_has_no_recall_columns():
    page, _ = build(scenarios=False)
    assert "<th>alerts per day</th></tr>" in page and "<th>recall</th>" not in page
    assert "<tr><td>0.50</td><td>2</td><td>0.29</td></tr>" in page


class TestSummaryText:
    def test_expired_rule_matches__not_listed_as_suppressed(self):
        stats = RunStats()
        stats.suppressed.update({"expired_rule": 61})
        summary = build_summary(stats, wall_seconds=1.0)
        assert summary["alerts"]["suppressed"] == {}
        assert summary["alerts"]["matched_expired_rules"] == 61
        text = render_summary(summary)
        assert "Suppressed" not in text and "expired_rule" not in text
        assert "matching only an expired suppression rule (not suppressed" in text
        assert text.rstrip().endswith("judged as usual): 61")

    def test_far_off_event__flagged_under_event_time(self):
        activity = Activity()
        for i in range(100):
            activity.observe(ROLE, T0 + i * 3600)
        activity.observe(OTHER, T0 + 75 * 365 * DAY)
        summary = build_summary(RunStats(), wall_seconds=1.0, time_range=activity.time_range())
        silence = summary["event_time"]["silence"]
        assert (silence["events_before"], silence["events_after"]) == (100, 1)
        assert silence["from"] == "2024-01-05T04:00:00Z" and silence["days"] > 27_000
        line = render_summary(summary).splitlines()[2]
        assert line.startswith("  WARNING: no event for 27,")
        assert "1 event(s) lie after that silence, far from the rest" in line

    def test_plain_event_time__no_silence_key(self):
        _, summary = build()
        assert set(summary["event_time"]) == {"first", "last"}
        assert "WARNING" not in render_summary(summary)

    def test_render_summary__sections_and_bar(self):
        _, summary = build()
        text = render_summary(summary)
        assert "aws.cloudtrail  900" in text
        assert "novelty.action  2" in text
        assert "leak" in text and "detected" in text
        assert "quality bar" in text
        assert summary["evaluation"]["scenarios_detected"] == 1

    def test_identities__learned_is_tracked_minus_learning(self):
        summary = build_summary(RunStats(), wall_seconds=1.0,
                                identities={"tracked": 9, "in_learning": 4, "dormant": 1})
        assert summary["identities"]["learned"] == 5
        assert "learned      5" in render_summary(summary)


class TestProgress:
    def test_tick__rate_limited_and_cleared(self, monkeypatch):
        import io

        from detector import summary as summary_module
        clock = iter([100.0, 100.5, 100.6, 101.0, 101.5])
        monkeypatch.setattr(summary_module.time, "perf_counter", lambda: next(clock))
        out = io.StringIO()
        progress = summary_module.Progress(out, enabled=True)  # started at 100.0
        progress.tick(1000, 1)  # 100.5: drawn, 2,000 events/s
        progress.tick(1100, 1)  # 100.6: within 1/4 s, skipped
        progress.tick(3000, 2)  # 101.0: drawn, 3,000 events/s
        assert out.getvalue().count("\r") == 2
        assert "1,000 events  2,000 events/s  1 alerts" in out.getvalue()
        assert "3,000 events  3,000 events/s  2 alerts" in out.getvalue()
        progress.close()
        assert out.getvalue().endswith("\r")

    def test_disabled__writes_nothing(self):
        import io

        from detector.summary import Progress
        out = io.StringIO()
        progress = Progress(out, enabled=False)
        progress.tick(5, 0, force=True)
        progress.close()
        assert out.getvalue() == ""


class TestEmptyRun:
    def test_no_alerts_and_no_events__page_still_renders(self):
        scenarios = parse_labels(LABELS)
        ev = evaluate([], scenarios, identity_days=0.0).to_dict()
        summary = build_summary(RunStats(), wall_seconds=0.0, alerts=[], evaluation=ev)
        sweep = threshold_sweep([], scenarios, span_days=1.0, thresholds=(0.0, 0.5))
        page = render_report(summary=summary, alerts=[], sweep=sweep, hourly={}, t_range=None)
        assert page.count("No alerts.") == 2
        assert "No alerted identity" in page
        assert "0 of 1" in page and "not met" in page
        assert summary["throughput"]["events_per_second"] is None
        assert "Replay: 0 events" in render_summary(summary)


def test_runs__flat_stretches_keep_their_ends_and_none_splits():
    from detector.report import _runs

    xs = [0, 1, 2, 3, 4, 5, 6, 7]
    values = [0, 0, 0, 5, 0, 0, None, 2]
    assert _runs(xs, values) == [[(0, 0), (2, 0), (3, 5), (4, 0), (5, 0)], [(7, 2)]]


def test_timelines__scenario_bands_and_silent_labelled_identities():
    silent = "arn:aws:iam::111122223333:role/quiet"
    labels = {"version": 1, "scenarios": [
        {"id": "leak", "title": "t", "identities": [OTHER],
         "start": "2024-01-05T00:00:00Z", "end": "2024-01-05T02:00:00Z"},
        {"id": "missed", "title": "t", "identities": [silent],
         "start": "2024-01-03T00:00:00Z", "end": "2024-01-03T01:00:00Z"},
    ]}
    scenarios = parse_labels(labels)
    activity = Activity()
    for i in range(100):
        activity.observe(OTHER, T0 + i * 3600)
        activity.observe(silent, T0 + i * 3600 + 60)
    log = AlertLog()
    log.add(alert("a1", OTHER, T0 + 4 * DAY + 600, 0.9, "high", "novelty.action"))
    summary = build_summary(RunStats(), wall_seconds=1.0, alerts=log.records(),
                            time_range=activity.time_range())
    page = render_report(summary=summary, alerts=log.records(), sweep=[],
                         hourly=activity.hourly, t_range=activity.time_range(),
                         scenarios=scenarios)
    other = page.split(f'aria-label="Events per hour of {OTHER}"')[1].split("</svg>")[0]
    quiet = page.split(f'aria-label="Events per hour of {silent}"')[1].split("</svg>")[0]
    assert "<title>scenario leak</title>" in other and "scenario missed" not in other
    assert "<title>scenario missed</title>" in quiet
    assert f"{silent} (no alert)" in page
    assert page.index(f"{OTHER} (1 alert)") < page.index(f"{silent} (no alert)")


def test_a_legend_gives_each_series_its_own_colour_and_says_what_it_leaves_out() -> None:
    """Ten colours made the eleventh detector share the first one's; a cut name ended
    mid-word ("technique.aws.access_key_for_other_u")."""
    from detector.report import LEGEND_CHARS, LEGEND_ITEMS, PALETTE, Plot

    assert len(set(PALETTE)) >= LEGEND_ITEMS
    names = [f"technique.aws.rule_number_{n:02d}_with_a_long_name" for n in range(16)]
    plot = Plot(0.0, 1.0, 1)
    plot.legend([(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)])
    text = "".join(plot.parts)
    assert text.count("<rect") == LEGEND_ITEMS
    assert names[0][:LEGEND_CHARS - 1] + "…" in text and f"<title>{names[0]}</title>" in text
    assert "+2 more (hover the bars)" in text
    whole = Plot(0.0, 1.0, 1)
    whole.legend([("technique.aws.access_key_for_other_user", "#000")])
    assert ">technique.aws.access_key_for_other_user<title>" in "".join(whole.parts)


def test_the_sweep_table_marks_the_threshold_in_force() -> None:
    from detector.report import sweep_table

    rows = [{"threshold": t / 20, "alerts": 10 - t // 4, "alerts_per_day": 1.0}
            for t in range(0, 21)]
    table = sweep_table(rows, in_force=0.55)
    assert table.count("(in force)") == 1 and "<td>0.55 (in force)</td>" in table
    assert "<td>0.50 (in force)</td>" in sweep_table(rows, in_force=0.52)  # highest below
    assert "(in force)" not in sweep_table(rows)

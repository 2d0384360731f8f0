"""The replay's tuning report: one self-contained HTML file with inline SVG plots.

Nothing in the page is fetched when it is opened: no scripts, no stylesheets, no fonts and
no images from anywhere; every plot is SVG written here in Python, so the report reads the
same offline, in a mail attachment or in a ticket. Plots:

1. alerts over time, stacked by detector and by severity;
2. for each alerted identity (the ``MAX_TIMELINES`` highest-scoring), its events per hour
   with its alerts marked;
3. the distribution of alert scores;
4. a threshold sweep: alerts per day, and recall and precision when labels are given,
   against the score threshold, drawn and also given as a table of the figures.

The page also states the throughput and, with labels, the quality figures.
"""

from __future__ import annotations

import html
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from detector.evaluation import SILENCE_DAYS, AlertRecord, Scenario

logger = logging.getLogger(__name__)

MAX_TIMELINES = 100
MAX_SPAN_SECONDS = 3 * 366 * 86400.0
"""Longest event-time span drawn: beyond it the charts show the 1st-99th percentile of
event time (and at most this much of it), so one record with an absurd timestamp cannot
make the report allocate millions of hourly bins."""
CLIP_PERCENT = 1.0
WIDTH, HEIGHT = 980, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 250, 14, 34
LEGEND_CHARS = 40  # the legend's 240 pixels at 11 px: the longest detector names fit
LEGEND_ITEMS = 14
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
"""Twenty colours: as many series as the legend shows (``LEGEND_ITEMS``) each have their
own (ten made the eleventh detector share the first one's blue)."""
SEVERITY_COLOURS = {
    "critical": "#7b0000", "high": "#d62728", "medium": "#ff7f0e",
    "low": "#e6c300", "info": "#1f77b4",
}  # fmt: skip
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SCENARIO_COLOUR = "#2ca02c"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;max-width:1040px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:.95em;margin:.8em 0 .2em;font-family:monospace}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-size:.9em}th{background:#f4f4f4}.ok{color:#176317;font-weight:bold}
.bad{color:#a00;font-weight:bold}svg{display:block;margin:.3em 0}
svg text{font-size:11px;fill:#333}.note{color:#666;font-size:.85em}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _iso(ts: float, *, hours: bool = True) -> str:
    fmt = "%Y-%m-%d %H:%M" if hours else "%Y-%m-%d"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for mult in (1, 2, 5, 10):
        if mult * step >= value:
            return mult * step
    return 10 * step


# ---------------------------------------------------------------------------- svg pieces


class Plot:
    """A fixed-size SVG plot area with linear x and y scales."""

    def __init__(self, x0: float, x1: float, y_max: float, *, height: int = HEIGHT) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y_max = _nice_max(y_max)
        self.height = height
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * span

    def y(self, value: float) -> float:
        span = self.height - TOP - BOTTOM
        return self.height - BOTTOM - value / self.y_max * span

    def axes(self, x_ticks: Sequence[tuple[float, str]], y_label: str) -> None:
        base, right = self.height - BOTTOM, WIDTH - RIGHT
        self.parts.append(
            f'<line x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/>'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/>'
        )
        for frac in (0.0, 0.5, 1.0):
            value = self.y_max * frac
            y = self.y(value)
            shown = f"{value:g}" if value < 1000 else f"{value:,.0f}"
            self.parts.append(
                f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(shown)}</text>'
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
            )
        for value, label in x_ticks:
            x = self.x(value)
            self.parts.append(
                f'<text x="{x:.1f}" y="{base + 14}" text-anchor="middle">{esc(label)}</text>'
            )
        self.parts.append(
            f'<text x="12" y="{TOP + 4}" transform="rotate(-90 12 {TOP + 4})" '
            f'text-anchor="end">{esc(y_label)}</text>'
        )

    def legend(self, items: Sequence[tuple[str, str]]) -> None:
        x = WIDTH - RIGHT + 10
        for i, (name, colour) in enumerate(items[:LEGEND_ITEMS]):
            y = TOP + 6 + i * 15
            shown = name if len(name) <= LEGEND_CHARS else name[:LEGEND_CHARS - 1] + "…"
            self.parts.append(
                f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14}" y="{y + 1}">{esc(shown)}'
                f"<title>{esc(name)}</title></text>"
            )
        if len(items) > LEGEND_ITEMS:  # the rest are drawn; say they are not named here
            y = TOP + 6 + LEGEND_ITEMS * 15
            self.parts.append(f'<text x="{x}" y="{y + 1}">+{len(items) - LEGEND_ITEMS} '
                              "more (hover the bars)</text>")

    def svg(self, title: str) -> str:
        body = "".join(self.parts)
        return (
            f'<svg width="{WIDTH}" height="{self.height}" '
            f'viewBox="0 0 {WIDTH} {self.height}" role="img" aria-label="{esc(title)}">'
            f"<title>{esc(title)}</title>{body}</svg>"
        )


_TICK_STEPS = tuple(h * 3600.0 for h in (1, 2, 3, 6, 12, 24, 48, 168, 336, 720, 2160, 8760))


def _time_ticks(t0: float, t1: float, most: int = 7) -> list[tuple[float, str]]:
    """Ticks on round hours or days (UTC), at most ``most`` of them."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TICK_STEPS if span / s <= most - 1), _TICK_STEPS[-1])
    first = -(-t0 // step) * step
    hours = step < 86400
    ticks = []
    value = first
    while value <= t1:
        ticks.append((value, _iso(value, hours=hours)))
        value += step
    return ticks


def stacked_bars(
    title: str,
    bins: Sequence[float],
    width: float,
    series: Mapping[str, Sequence[int]],
    colours: Mapping[str, str],
    y_label: str,
) -> str:
    """Stacked bars over time; ``bins`` are bin start times, ``width`` their length."""
    totals = [sum(col) for col in zip(*series.values(), strict=True)] if series else []
    plot = Plot(bins[0], bins[-1] + width, max(totals, default=0))
    plot.axes(_time_ticks(bins[0], bins[-1] + width), y_label)
    bar_w = max(plot.x(bins[0] + width) - plot.x(bins[0]) - 1, 1)
    stack = [0] * len(bins)
    for name, counts in series.items():
        for i, n in enumerate(counts):
            if not n:
                continue
            top, bottom = plot.y(stack[i] + n), plot.y(stack[i])
            stack[i] += n
            plot.parts.append(
                f'<rect x="{plot.x(bins[i]):.1f}" y="{top:.1f}" width="{bar_w:.1f}" '
                f'height="{bottom - top:.1f}" fill="{colours[name]}">'
                f"<title>{esc(name)} {_iso(bins[i])}: {n}</title></rect>"
            )
    plot.legend([(name, colours[name]) for name in series])
    return plot.svg(title)


def _runs(
    xs: Sequence[float], values: Sequence[float | None]
) -> list[list[tuple[float, float]]]:
    """Unbroken runs of (x, value), split at ``None``, without the inner points of flat
    stretches (a quiet month of one identity is two points, not 720)."""
    runs: list[list[tuple[float, float]]] = [[]]
    n = len(values)
    for i, (x, v) in enumerate(zip(xs, values, strict=True)):
        if v is None:
            runs.append([])
            continue
        flat = 0 < i < n - 1 and values[i - 1] == v == values[i + 1]
        if not flat or not runs[-1]:
            runs[-1].append((x, v))
    return [run for run in runs if run]


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    colours: Mapping[str, str],
    *,
    y_max: float,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]],
    height: int = HEIGHT,
) -> Plot:
    """Polylines sharing one y axis (``None`` values leave a gap)."""
    plot = Plot(xs[0], xs[-1], y_max, height=height)
    plot.axes(x_ticks, y_label)
    for name, values in series.items():
        for run in _runs(xs, values):
            points = " ".join(f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in run)
            plot.parts.append(
                f'<polyline fill="none" stroke="{colours[name]}" stroke-width="1.5" '
                f'points="{points}"/>'
            )
    plot.legend([(name, colours[name]) for name in series])
    return plot


# ---------------------------------------------------------------------------- the plots


def alerts_over_time(
    alerts: Sequence[AlertRecord], key: str, t_range: tuple[float, float] | None = None
) -> str:
    """Alerts per time bin (day, or hour for short replays) stacked by ``key``.

    The x axis spans the replay's event time (``t_range``) so quiet days show as quiet.
    """
    if not alerts:
        return '<p class="note">No alerts.</p>'
    t0 = min(a.raised_ts for a in alerts)
    t1 = max(a.raised_ts for a in alerts)
    if t_range is not None:
        t0, t1 = min(t0, t_range[0]), max(t1, t_range[1])
    if t1 - t0 > MAX_SPAN_SECONDS:  # an absurd timestamp: draw the (clipped) replay range
        t0, t1 = t_range if t_range is not None else (t0, t1)
        t0 = max(t0, t1 - MAX_SPAN_SECONDS)
    width = 3600.0 if t1 - t0 < 3 * 86400 else 86400.0
    start = t0 // width * width
    n_bins = int((t1 - start) // width) + 1
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * n_bins)
    last = n_bins - 1
    for a in alerts:  # alerts outside the drawn range are counted at its edges
        index = (a.raised_ts - start) // width
        counts[getattr(a, key)][int(min(max(index, 0), last))] += 1
    if key == "severity":
        names = [s for s in SEVERITY_ORDER if s in counts] + sorted(
            set(counts) - set(SEVERITY_ORDER)
        )
        colours = {n: SEVERITY_COLOURS.get(n, "#999") for n in names}
    else:
        names = sorted(counts, key=lambda n: -sum(counts[n]))
        colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    bins = [start + i * width for i in range(n_bins)]
    unit = "hour" if width == 3600 else "day"
    return stacked_bars(
        f"Alerts per {unit} by {key}",
        bins,
        width,
        {n: counts[n] for n in names},
        colours,
        f"alerts per {unit}",
    )


def identity_timeline(
    identity: str,
    hourly: Mapping[int, int],
    alerts: Sequence[AlertRecord],
    t_range: tuple[float, float],
    windows: Sequence[tuple[float, float, str]] = (),
) -> str:
    """Events per hour of one identity over the replay, alerts marked as vertical lines
    coloured by severity, labelled scenario ``windows`` (start, end, id) as green bands."""
    h0, h1 = int(t_range[0] // 3600), int(t_range[1] // 3600)
    h0 = max(h0, h1 - int(MAX_SPAN_SECONDS // 3600))
    hours = list(range(h0, h1 + 1)) if h1 > h0 else [h0, h0 + 1]
    values = [float(hourly.get(h, 0)) for h in hours]
    xs = [h * 3600.0 for h in hours]
    plot = line_chart(
        f"Events per hour of {identity}",
        xs,
        {"events/hour": values},
        {"events/hour": "#1f77b4"},
        y_max=max(values, default=0),
        y_label="events/hour",
        x_ticks=_time_ticks(xs[0], xs[-1]),
        height=150,
    )
    for start, end, name in windows:
        x0, x1 = plot.x(max(start, xs[0])), plot.x(min(end, xs[-1]))
        plot.parts.append(
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 3.0):.1f}" '
            f'height="{plot.height - BOTTOM - TOP}" fill="{SCENARIO_COLOUR}" '
            'fill-opacity="0.3">'
            f"<title>scenario {esc(name)}</title></rect>"
        )
    for a in alerts:
        x = plot.x(min(max(a.raised_ts, xs[0]), xs[-1]))
        colour = SEVERITY_COLOURS.get(a.severity, "#d62728")
        plot.parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{plot.height - BOTTOM}" '
            f'stroke="{colour}" stroke-width="2"><title>{esc(a.severity)} '
            f"{esc(a.detector)} score {a.score:.2f} at {_iso(a.raised_ts)}</title></line>"
        )
    legend = [("events/hour", "#1f77b4"), ("alert", "#d62728")]
    plot.legend(legend + ([("labelled scenario", SCENARIO_COLOUR)] if windows else []))
    return plot.svg(f"Events per hour of {identity}")


def score_histogram(alerts: Sequence[AlertRecord], bins: int = 20) -> str:
    counts = [0] * bins
    for a in alerts:
        counts[min(int(a.score * bins), bins - 1)] += 1
    plot = Plot(0.0, 1.0, max(counts, default=0))
    plot.axes([(i / 5, f"{i / 5:.1f}") for i in range(6)], "alerts")
    bar_w = plot.x(1 / bins) - plot.x(0) - 1
    for i, n in enumerate(counts):
        if n:
            top = plot.y(n)
            plot.parts.append(
                f'<rect x="{plot.x(i / bins):.1f}" y="{top:.1f}" width="{bar_w:.1f}" '
                f'height="{plot.y(0) - top:.1f}" fill="#9467bd"><title>score '
                f"{i / bins:.2f}-{(i + 1) / bins:.2f}: {n}</title></rect>"
            )
    return plot.svg("Score distribution of alerts")


def sweep_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """Alerts per day against threshold; recall and precision on a second chart."""
    xs = [r["threshold"] for r in rows]
    ticks = [(i / 5, f"{i / 5:.1f}") for i in range(6)]
    per_day = [r["alerts_per_day"] for r in rows]
    out = line_chart(
        "Alerts per day against score threshold",
        xs,
        {"alerts/day": per_day},
        {"alerts/day": "#1f77b4"},
        y_max=max(per_day, default=0),
        y_label="alerts per day",
        x_ticks=ticks,
    ).svg("Alerts per day against score threshold")
    if rows and "recall" in rows[0]:
        quality = line_chart(
            "Recall and precision against score threshold",
            xs,
            {"recall": [r["recall"] for r in rows], "precision": [r["precision"] for r in rows]},
            {"recall": "#2ca02c", "precision": "#d62728"},
            y_max=1.0,
            y_label="fraction",
            x_ticks=ticks,
        )
        out += quality.svg("Recall and precision against score threshold")
    return out


def sweep_table(rows: Sequence[Mapping[str, Any]], in_force: float | None = None) -> str:
    """The sweep's figures as a table, one row per threshold, so a value such as 0.55 is
    read off exactly rather than estimated from a line between two tick marks. The row of
    the threshold in force (``in_force``: the highest threshold at or below it) is
    marked "in force"."""
    labelled = bool(rows) and "recall" in rows[0]
    marked = None
    if in_force is not None:
        below = [r["threshold"] for r in rows if r["threshold"] <= in_force + 1e-9]
        marked = max(below, default=None)
    head = "<tr><th>threshold</th><th>alerts</th><th>alerts per day</th>"
    head += "<th>recall</th><th>precision</th></tr>" if labelled else "</tr>"

    def fraction(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    body = "".join(
        f"<tr><td>{r['threshold']:.2f}{' (in force)' if r['threshold'] == marked else ''}"
        f"</td><td>{r['alerts']:,}</td>"
        f"<td>{r['alerts_per_day']:,.2f}</td>"
        + (f"<td>{fraction(r['recall'])}</td><td>{fraction(r['precision'])}</td>"
           if labelled else "")
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


# ---------------------------------------------------------------------------- the page


def _rate(tp: Mapping[str, Any]) -> str:
    text = f"{tp['events_per_second'] or 0:,.0f} events/s (one process, wall time)"
    if tp.get("events_per_cpu_second"):
        text += f"; {tp['events_per_cpu_second']:,.0f} events per CPU second"
    return text


def _figures_table(summary: Mapping[str, Any]) -> str:
    tp, ev, al = summary["throughput"], summary["events"], summary["alerts"]
    rows = [
        ("events", f"{ev['total']:,}"),
        ("throughput", _rate(tp)),
        ("wall time", f"{tp['wall_seconds']:.1f} s"),
        ("event time", f"{summary['event_time']['first']} .. {summary['event_time']['last']}"),
        ("alerts", f"{al['total']:,} ({al['lines_written']:,} lines incl. updates)"),
        ("late events", f"{summary['late_events']:,}"),
        ("dead letters", f"{sum(summary['dead_letters'].values()):,}"),
    ]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _evaluation_html(ev: Mapping[str, Any]) -> str:
    bar = ev["quality_bar"]

    def mark(ok: bool) -> str:
        return '<span class="ok">met</span>' if ok else '<span class="bad">not met</span>'

    ttd = ev["median_time_to_detect_seconds"]
    rows = "".join(
        f"<tr><td>{esc(s['id'])}</td><td>{esc(s['title'])}</td>"
        f"<td>{'detected' if s['detected'] else '<b>missed</b>'}</td>"
        f"<td>{_minutes(s['time_to_detect_seconds'])}</td>"
        f"<td>{s['alerts']}</td></tr>"
        for s in ev["scenarios"]
    )
    return (
        "<h2>Quality against the labels</h2><table>"
        f"<tr><th>scenarios detected</th><td>{ev['scenarios_detected']} of "
        f"{ev['scenarios_total']}</td><td>{mark(bar['all_detected'])}</td></tr>"
        f"<tr><th>alerts outside scenarios</th><td>{ev['alerts_outside_scenarios']:,} over "
        f"{ev['identity_days']:,.1f} identity-days (each identity's first to last event, "
        f"less its silences over {SILENCE_DAYS:g} days, at least 1) = "
        f"{ev['outside_per_1000_identity_days']:.2f} per 1,000 (bar "
        f"&le; {bar['max_outside_per_1000_identity_days']:g})</td>"
        f"<td>{mark(bar['outside_rate_ok'])}</td></tr>"
        f"<tr><th>median time to detect</th><td>"
        f"{_minutes(ttd)} (bar &lt; "
        f"{bar['max_median_time_to_detect_seconds'] / 60:g} min)</td>"
        f"<td>{mark(bar['median_ttd_ok'])}</td></tr>"
        f"<tr><th>quality bar</th><td colspan=2>{mark(bar['met'])}</td></tr></table>"
        "<table><tr><th>scenario</th><th>title</th><th>verdict</th><th>time to detect</th>"
        f"<th>alerts</th></tr>{rows}</table>"
    )


def _timelines(
    alerts: Sequence[AlertRecord],
    hourly: Mapping[str, Mapping[int, int]] | None,
    t_range: tuple[float, float] | None,
    scenarios: Sequence[Scenario] = (),
) -> str:
    """Timelines of the highest-scoring alerted identities, then of labelled identities
    that raised nothing (what a missed scenario looked like)."""
    if not hourly or t_range is None:
        return '<p class="note">No alerted identity, or no activity recorded.</p>'
    by_identity: dict[str, list[AlertRecord]] = defaultdict(list)
    for a in alerts:
        by_identity[a.identity].append(a)
    windows: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for sc in scenarios:
        for identity in sc.identities:
            windows[identity].append((sc.start, sc.end, sc.id))
    ranked = sorted(by_identity, key=lambda i: (-max(a.score for a in by_identity[i]), i))
    silent = sorted(i for i in windows if i not in by_identity and i in hourly)
    if not ranked and not silent:
        return '<p class="note">No alerted identity, or no activity recorded.</p>'
    shown = ranked[:MAX_TIMELINES]
    parts = []
    if len(ranked) > len(shown):
        parts.append(
            f'<p class="note">{len(ranked)} identities alerted; the {len(shown)} with the '
            "highest alert scores are shown.</p>"
        )
    for identity in shown + silent:
        count = len(by_identity.get(identity, ()))
        said = f"{count} alert{'s' if count != 1 else ''}" if count else "no alert"
        parts.append(f"<h3>{esc(identity)} ({said})</h3>")
        parts.append(identity_timeline(identity, hourly.get(identity, {}),
                                       by_identity.get(identity, []), t_range,
                                       windows.get(identity, ())))
    return "".join(parts)


def display_range(
    t_range: tuple[float, float] | None,
    hourly: Mapping[str, Mapping[int, int]] | None,
) -> tuple[tuple[float, float] | None, bool]:
    """The event-time range the charts draw, and whether it was clipped.

    A replay longer than ``MAX_SPAN_SECONDS`` is drawn over the 1st-99th percentile of its
    events' hours (and at most ``MAX_SPAN_SECONDS`` of it, ending at the 99th).
    """
    if t_range is None or t_range[1] - t_range[0] <= MAX_SPAN_SECONDS:
        return t_range, False
    t0, t1 = t_range
    per_hour: Counter[int] = Counter()
    for counts in (hourly or {}).values():
        per_hour.update(counts)
    if per_hour:
        hours = sorted(per_hour.items())
        total = sum(per_hour.values())
        low, high = total * CLIP_PERCENT / 100.0, total * (100.0 - CLIP_PERCENT) / 100.0
        seen, first, last = 0, hours[0][0], hours[-1][0]
        for hour, count in hours:
            if seen <= low < seen + count:
                first = hour
            if seen < high <= seen + count:
                last = hour
                break
            seen += count
        t0, t1 = max(t0, first * 3600.0), min(t1, last * 3600.0 + 3599.0)
    t0 = max(t0, t1 - MAX_SPAN_SECONDS)
    return (t0, max(t0, t1)), True


def _sweep_without_silence(
    sweep: Sequence[Mapping[str, Any]], t_range: tuple[float, float] | None
) -> tuple[Sequence[Mapping[str, Any]], str]:
    """The sweep with alerts per day over the event-time span less its long silence
    (``EventTimeRange.silence``), and a note saying so; unchanged when there is none.

    The sweep divides by the whole span: one record dated decades away would make every
    threshold read 0.00 alerts per day."""
    silence = getattr(t_range, "silence", None)
    if not sweep or t_range is None or silence is None:
        return sweep, ""
    days = max((t_range[1] - t_range[0] - (silence.end - silence.start)) / 86400.0, 1.0)
    rows = [{**row, "alerts_per_day": row["alerts"] / days} for row in sweep]
    note = (f'<p class="note">Alerts per day are over {days:,.1f} days of event time: the '
            f"{silence.days:,.0f} days without any event ({_iso(silence.start)} .. "
            f"{_iso(silence.end)}) are left out.</p>")
    return rows, note


def _counts_table(title: str, counts: Mapping[str, int]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:,}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{esc(title)}</th><th>alerts</th></tr>{rows}</table>"


def render_report(
    *,
    summary: Mapping[str, Any],
    alerts: Sequence[AlertRecord],
    sweep: Sequence[Mapping[str, Any]],
    hourly: Mapping[str, Mapping[int, int]] | None,
    t_range: tuple[float, float] | None,
    scenarios: Sequence[Scenario] | None = None,
    title: str = "nhi-detector replay report",
    in_force: float | None = None,
) -> str:
    """The whole report page as one HTML string; ``in_force`` is the score threshold of the
    run's ``min_severity``, marked in the sweep's table."""
    evaluation = summary.get("evaluation")
    sweep, sweep_note = _sweep_without_silence(sweep, t_range)
    t_range, clipped = display_range(t_range, hourly)
    note = ""
    if clipped and t_range is not None:
        note = (
            '<p class="note">Event time spans more than '
            f"{MAX_SPAN_SECONDS / 86400:,.0f} days (a record with an implausible timestamp?): "
            f"charts show {_iso(t_range[0])} .. {_iso(t_range[1])} only.</p>"
        )
        logger.warning("report: event time spans too long to draw; charts are clipped")
    severities = Counter(a.severity for a in alerts)
    detectors = Counter(a.detector for a in alerts)
    sections = [
        f"<h1>{esc(title)}</h1>",
        _figures_table(summary),
        _evaluation_html(evaluation) if evaluation else "",
        "<h2>Alerts over time</h2>",
        '<p class="note">Each alert is counted once (its revisions merged), at the event '
        "time it was first raised.</p>",
        note,
        alerts_over_time(alerts, "detector", t_range),
        alerts_over_time(alerts, "severity", t_range),
        _counts_table("severity (last revision)", dict(severities.most_common())),
        _counts_table("detector (leading signal)", dict(detectors.most_common())),
        "<h2>Score distribution</h2>",
        score_histogram(alerts),
        "<h2>Threshold sweep</h2>",
        '<p class="note">Alerts kept if their highest score is at or above the threshold. '
        "Thresholds below the detector's own alert threshold show the same figures, since "
        "those alerts were never raised." + (
            f" This run alerted from {in_force:.2f} (its <code>min_severity</code>'s "
            "threshold): the row marked in force." if in_force is not None else "")
        + "</p>",
        sweep_note,
        sweep_chart(sweep) if sweep else "",
        sweep_table(sweep, in_force) if sweep else "",
        "<h2>Alerted identities</h2>",
        '<p class="note">Events per hour over the replay; vertical lines mark alerts, '
        "coloured by severity, green bands the labelled scenarios (hover for details). "
        "Labelled identities that raised no alert follow the alerted ones.</p>",
        _timelines(alerts, hourly, t_range, scenarios or ()),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(s for s in sections if s)
        + "</body></html>\n"
    )

"""`twir-mail report`: one self-contained HTML page about campaigns and the list.

Charts are static SVG drawn by pygal (its tooltips script is left out: the page
makes no request at all, so it can be mailed around or opened offline). Every
figure comes from a named Store query (mailer/store/reports.py); this module only
lays them out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jinja2

from mailer.errors import TwirMailError
from mailer.models import CampaignKind
from mailer.store.reports import CampaignStats

INSTALL_HINT = "pip install 'twir-mail[report]'"
CAMPAIGNS_SHOWN = 5
EVENT_SERIES = (("delivery", "delivered"), ("delivery-delay", "delayed"), ("reject", "rejected"),
                ("bounce", "bounced"), ("complaint", "complained"))
WEEK_SERIES = (("subscribed", "joined"), ("unsubscribed", "left"), ("bounced", "bounced"),
               ("complained", "complained"))
# One colour per meaning, the same in every chart (pygal's default palette gives red to "sent").
COLOURS = {"sent": "#3b6fb6", "delivered": "#3a9a5b", "joined": "#3a9a5b", "delayed": "#9a9a9a",
           "rejected": "#7b4fa8", "bounced": "#e08a1e", "left": "#3b6fb6", "unsubscribed": "#3b6fb6",
           "complained": "#c8322d"}


class ReportError(TwirMailError):
    """The report cannot be drawn (the charting library is missing)."""


@dataclass
class CampaignSection:
    campaign: object
    stats: CampaignStats
    rows: list[tuple[str, int, str]]  # (label, count, rate over sent)
    per_minute: str  # SVG
    feedback: str  # SVG


def _pygal():
    try:
        import pygal
    except ImportError:
        raise ReportError(f"the report needs the charting library pygal: {INSTALL_HINT}") from None
    return pygal


def _chart(kind: str, title: str, labels: list[str], series: list[tuple[str, list[int]]], **extra) -> str:
    pygal = _pygal()
    from pygal.style import Style

    style = Style(colors=tuple(COLOURS[name] for name, _ in series), background="white", plot_background="white")
    chart = getattr(pygal, kind)(js=[], disable_xml_declaration=True, width=900, height=320, title=title, style=style,
                                 x_label_rotation=30, show_minor_x_labels=False, legend_at_bottom=True,
                                 no_data_text="no data yet", **extra)
    chart.x_labels = labels
    chart.x_labels_major_every = max(1, len(labels) // 12)
    for name, values in series:
        chart.add(name, values)
    return chart.render(is_unicode=True)


def _rows(stats: CampaignStats) -> list[tuple[str, int, str]]:
    sent, fb, ev, st = stats.statuses["sent"], stats.feedback, stats.events, stats.statuses

    def rate(n: int) -> str:
        return f"{n / sent:.2%}" if sent else "-"

    figures = [("sent", sent), ("delivered", stats.delivered), ("hard bounces", fb.hard_bounces),
               ("soft bounces", fb.soft_bounces), ("complaints", fb.complaints), ("rejected", ev["reject"]),
               ("delayed (no outcome yet)", ev["delivery-delay"]), ("failed", st["failed"]),
               ("skipped", st["skipped"]), ("unknown", st["sending"]), ("queued", st["queued"])]
    return [(label, n, rate(n) if label != "sent" else "") for label, n in figures]


def _campaign_section(store, campaign) -> CampaignSection:
    stats = store.campaign_stats(campaign.id)
    minutes = store.sent_per_minute(campaign.id)
    per_minute = _chart("Bar", f"Campaign {campaign.id}: messages sent per minute (UTC)",
                        [m for m, _ in minutes], [("sent", [n for _, n in minutes])])
    events = store.campaign_events_over_time(campaign.id, "hour")
    hours = sorted({b for b, _, _ in events})
    by = {(b, e): n for b, e, n in events}
    feedback = _chart("StackedBar", f"Campaign {campaign.id}: SES feedback per hour (UTC)", hours,
                      [(name, [by.get((h, key), 0) for h in hours]) for key, name in EVENT_SERIES])
    return CampaignSection(campaign, stats, _rows(stats), per_minute, feedback)


def build_report(store, campaign_id: int | None = None, now: dt.datetime | None = None) -> str:
    """The whole page as a string."""
    _pygal()  # fail before any query if the library is missing
    if campaign_id is not None:
        chosen = [store.campaign(campaign_id)]
    else:
        chosen = [c for c in reversed(store.campaigns()) if c.kind is CampaignKind.SEND][:CAMPAIGNS_SHOWN]
    weeks = store.subscribers_per_week()
    week_chart = _chart("Bar", "Subscribers per week (week starting Monday, UTC)", [w.week for w in weeks],
                        [(name, [w.counts[key] for w in weeks]) for key, name in WEEK_SERIES])
    costly = store.unsubscribes_by_issue()
    costly_chart = _chart("HorizontalBar", "Issues followed by the most departures",
                          [f"#{i}" for i, _, _ in costly],
                          [("unsubscribed", [u for _, u, _ in costly]), ("complained", [c for _, _, c in costly])])
    return _TEMPLATE.render(
        generated=(now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"),
        sections=[_campaign_section(store, c) for c in chosen], weeks=weeks, week_series=WEEK_SERIES,
        week_chart=week_chart, costly=costly, costly_chart=costly_chart)


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>twir-mail report</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .muted { color: #666; }
svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>twir-mail report</h1>
<p class="muted">Generated {{ generated }}. Rates are over messages sent; feedback is what SES reported back.</p>
{% for s in sections %}
<section class="campaign" data-campaign="{{ s.campaign.id }}">
<h2>Campaign {{ s.campaign.id }}: issue {{ s.campaign.issue_number }} to {{ s.campaign.list_name or "addresses" }}
 ({{ s.campaign.status.value }})</h2>
<p class="muted">{{ s.campaign.subject }}{% if s.stats.first_sent %}: messages from
 {{ s.stats.first_sent.strftime("%Y-%m-%d %H:%M:%S") }} to {{ s.stats.last_sent.strftime("%H:%M:%S") }} UTC{% endif %}
 {% if s.campaign.pause_reason %}<br>paused: {{ s.campaign.pause_reason }}{% endif %}</p>
<table><tr><th>messages</th><th>count</th><th>rate</th></tr>
{% for label, n, rate in s.rows %}<tr data-figure="{{ label }}"><td>{{ label }}</td><td class="n">{{ n }}</td><td class="n">{{ rate }}</td></tr>
{% endfor %}</table>
{{ s.per_minute | safe }}
{{ s.feedback | safe }}
</section>
{% else %}<p>No campaigns yet.</p>{% endfor %}
<h2>Subscribers per week</h2>
{{ week_chart | safe }}
<table id="weeks"><tr><th>week</th>{% for _, name in week_series %}<th>{{ name }}</th>{% endfor %}</tr>
{% for w in weeks %}<tr data-week="{{ w.week }}"><td>{{ w.week }}</td>{% for key, _ in week_series %}<td class="n">{{ w.counts[key] }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Issues that cost the most subscribers</h2>
<p class="muted">A departure (unsubscribe or complaint) is counted against the last issue sent to that reader before it.</p>
{{ costly_chart | safe }}
<table id="costly"><tr><th>issue</th><th>unsubscribed</th><th>complained</th></tr>
{% for issue, u, c in costly %}<tr data-issue="{{ issue }}"><td>#{{ issue }}</td><td class="n">{{ u }}</td><td class="n">{{ c }}</td></tr>
{% endfor %}</table>
</body></html>
""")

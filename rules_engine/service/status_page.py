"""The status page at `/`: server-rendered HTML, no build step, a little plain JavaScript.

- `/` is the whole page; the JavaScript fetches `/?part=live` every 2 s (the same HTML of the
  live part, rendered here) and swaps it in, keeping the rules filter (by state) applied.
- `/trace/{id}` is one decision trace, Home Assistant style: each step with its time, audit
  record seq, and what it saw (trigger value, guard expressions and values, risk check,
  request and response).
- The kill switch form posts to `/kill` with the admin token typed into the page
  (`Authorization: Bearer`); the page never holds or shows a secret of its own. Everything
  else is read-only.

Everything shown comes from the status document or a trace, both built from audit records,
which are redacted before they are written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from rules_engine.service.status_report import NOT_A_RULE, RULE_STATES

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
.badge{padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#dfe3ea;color:#1d2330}
.ok,.armed,.ready,.delivered{background:#cdebd3;color:#14532d}
.degraded,.holding,.cooling_down,.waiting,.running{background:#fde9c3;color:#7a4b00}
.unhealthy,.not_ready,.error,.engaged,.down,.rejected,.failed{background:#f8cfcf;color:#7f1d1d}
.disabled{background:#e5e7eb;color:#4b5563}
main{padding:12px 20px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;margin:0 0 14px;padding:10px 14px}
section h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{color:#4b5563;font-weight:600}
.muted{color:#6b7280}
.recent a{margin-right:6px;white-space:nowrap}
pre{background:#f3f4f6;padding:6px;border-radius:4px;white-space:pre-wrap;word-break:break-all;margin:4px 0;
font-size:12px}
.step{border-left:3px solid #94a3b8;padding:4px 10px;margin:6px 0}
.step.guard{border-color:#2563eb}.step.decision{border-color:#16a34a}.step.risk,.step.error{border-color:#dc2626}
.step.request,.step.response{border-color:#9333ea}
form{display:flex;gap:8px;flex-wrap:wrap;align-items:center}
input{padding:4px 6px}
button{padding:4px 12px;cursor:pointer}
#kill-result{font-weight:600}
tr.degraded td{background:#fde2e2}
.standby{background:#dbeafe;color:#1e3a8a}
"""

HEADER_FOLLOWS_JS = """
const header = () => {  // the header follows the refreshed part: #live-X's badge or text is shown in #X
  document.querySelectorAll('#live [id^="live-"]').forEach(now => {
    const shown = document.getElementById(now.id.slice(5));
    if (shown) { shown.className = now.className; shown.textContent = now.textContent; }
  });
};
"""
"""The engine's and the worker's page: after each refresh, copy what the header shows from the refreshed part."""

_JS = HEADER_FOLLOWS_JS + """
const filter = () => {
  const want = document.getElementById('state-filter').value;
  document.querySelectorAll('#rules tbody tr').forEach(row => {
    row.hidden = want !== 'all' && row.dataset.state !== want;
  });
};
const refresh = async () => {
  try {
    const answer = await fetch('/?part=live', {cache: 'no-store'});
    if (answer.ok) { document.getElementById('live').innerHTML = await answer.text(); filter(); header(); }
  } catch (e) { /* the engine is restarting: try again */ }
};
const kill = async (path) => {
  const token = document.getElementById('kill-token').value;
  const reason = document.getElementById('kill-reason').value || 'engaged from the status page';
  const out = document.getElementById('kill-result');
  const answer = await fetch(path, {method: 'POST', headers: {'Authorization': 'Bearer ' + token,
    'Content-Type': 'application/json'}, body: JSON.stringify({reason: reason, source: 'status page'})});
  let body = {};
  try { body = await answer.json(); } catch (e) {}
  out.textContent = answer.ok ? (path.endsWith('clear') ? 'kill switch cleared' : 'kill switch engaged')
                              : 'refused (' + answer.status + '): ' + (body.reason || body.error || '');
  out.className = answer.ok ? 'badge ok' : 'badge rejected';
  refresh();
};
document.getElementById('state-filter').addEventListener('change', filter);
document.getElementById('kill-engage').addEventListener('click', e => { e.preventDefault(); kill('/kill'); });
document.getElementById('kill-clear').addEventListener('click', e => { e.preventDefault(); kill('/kill/clear'); });
setInterval(refresh, 2000);
"""


def _time(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} s"


def _badge(text: Any, css: str | None = None, element_id: str | None = None) -> str:
    named = f' id="{element_id}"' if element_id else ""
    return f'<span{named} class="badge {escape(css or str(text))}">{escape(str(text))}</span>'


def _flag(condition: Any, yes: str, no: str, yes_css: str = "ok", no_css: str = "error") -> str:
    return _badge(yes, yes_css) if condition else _badge(no, no_css)


def _rows(rows: Iterable[str], columns: int, empty: str) -> str:
    body = "".join(rows)
    return body or f'<tr><td colspan="{columns}" class="muted">{escape(empty)}</td></tr>'


def trace_link(trace_id: str, text: str | None = None) -> str:
    return f'<a href="/trace/{quote(trace_id, safe="")}">{escape(text or trace_id)}</a>'


def render_live(doc: Mapping[str, Any]) -> str:
    """The part of the page that is refreshed: everything but the header and the kill form."""
    return "".join([_standby(doc), _rules(doc), _feeds(doc), _orders(doc), _kill_state(doc), _signals(doc),
                    _engine(doc), cluster_section(doc.get("cluster"))])


def render_page(doc: Mapping[str, Any], *, kill_enabled: bool) -> str:
    options = "".join(f'<option value="{s}">{s}</option>' for s in RULE_STATES)
    kill_form = (
        '<form id="kill-form"><label>admin token <input id="kill-token" type="password" autocomplete="off"></label>'
        '<label>reason <input id="kill-reason" type="text" maxlength="200"></label>'
        '<button id="kill-engage">Engage kill switch</button><button id="kill-clear">Clear</button>'
        '<span id="kill-result"></span></form>'
        if kill_enabled else
        '<p class="muted">No admin token is configured (kill_switch.token_env / token_file): use '
        '<code>rules-engine kill</code> or SIGUSR1.</p><form hidden><input id="kill-token"><input id="kill-reason">'
        '<button id="kill-engage"></button><button id="kill-clear"></button><span id="kill-result"></span></form>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rules-engine status</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><header><h1>rules-engine</h1><span>mode {_badge(doc.get("mode"), "muted")}</span>
<span>health {_badge(doc.get("health"), element_id="health")}</span>
<span class="muted">v{escape(str(doc.get("version")))}</span>
<label>rules: <select id="state-filter"><option value="all">all states</option>{options}</select></label></header>
<main><section id="kill"><h2>Kill switch</h2>{kill_form}</section>
<div id="live">{render_live(doc)}</div></main><script>{_JS}</script></body></html>"""


def _rules(doc: Mapping[str, Any]) -> str:
    rows = []
    for rule in doc.get("rules", []):
        last = rule.get("last_fire")
        last_html = "—" if not last else (f'{_time(last.get("time"))} {trace_link(last["decision_id"])} '
                                          f'{_badge(last.get("outcome") or "running", "muted")}')
        fires = rule.get("fires") or {}
        window = fires.get("window")
        limit = f' / {fires["max"]} <span class="muted">per {window / 3600:g} h</span>' if window else \
            ' <span class="muted">in all</span>'
        error = rule.get("last_error")
        error_html = "—" if not error else f'{_time(error.get("time"))}: {escape(str(error.get("reason")))}'
        recent = " ".join(trace_link(t["id"], t["outcome"]) for t in rule.get("recent", [])[:6]) or "—"
        rows.append(
            f'<tr data-state="{escape(rule["state"])}" data-rule="{escape(rule["id"])}">'
            f'<td><b>{escape(rule["id"])}</b><div class="muted" title="{escape(rule.get("source") or "")}">'
            f'{escape((rule.get("source") or "").rsplit("/", 1)[-1])}</div></td>'
            f'<td>{_badge(rule["state"])}<div class="muted">{escape(rule.get("state_detail") or "")}</div></td>'
            f'<td>{last_html}</td><td>{_time(rule.get("next_beat")) if rule.get("next_beat") else "—"}</td>'
            f'<td>{fires.get("count", 0)}{limit}</td>'
            f'<td>{error_html}</td><td class="recent">{recent}</td></tr>')
    return (f'<section><h2>Rules</h2><table id="rules"><thead><tr><th>rule</th><th>state</th><th>last fire</th>'
            f'<th>next timer beat</th><th>fires</th><th>last error</th><th>recent decisions</th></tr></thead>'
            f'<tbody>{_rows(rows, 7, "no rules loaded")}</tbody></table></section>')


def _feeds(doc: Mapping[str, Any]) -> str:
    rows = []
    for market, feed in (doc.get("feeds") or {}).items():
        for symbol, info in (feed.get("symbols") or {"—": {}}).items():
            stale = feed.get("stale") or info.get("stale")
            rows.append(f'<tr><td>{escape(market)}</td><td>{escape(symbol)}</td>'
                        f'<td>{_flag(feed.get("connected"), "connected", "disconnected")}</td>'
                        f'<td>{_age(info.get("last_tick_age"))}</td><td>{_age(feed.get("last_message_age"))}</td>'
                        f'<td>{_flag(not stale, "fresh", "stale")}</td></tr>')
    return (f'<section><h2>Feeds</h2><table id="feeds"><thead><tr><th>market</th><th>symbol</th><th>connection</th>'
            f'<th>last tick</th><th>last message</th><th></th></tr></thead>'
            f'<tbody>{_rows(rows, 6, "no feed needed by the loaded rules")}</tbody></table></section>')


def _orders(doc: Mapping[str, Any]) -> str:
    rows = [f'<tr><td>{escape(str(o.get("rule_id") or NOT_A_RULE))}</td>'
            f'<td>{escape(str(o.get("pair") or o.get("market")))}</td>'
            f'<td>{escape(str(o.get("status")))}</td><td>{escape(str(o.get("volume")))}</td>'
            f'<td>{escape(str(o.get("price")))}</td><td>{escape(str(o.get("filled")))}</td>'
            f'<td>{escape(", ".join(o.get("txids") or []) or str(o.get("cl_ord_id")))}</td></tr>'
            for o in doc.get("orders", [])]
    risk = doc.get("risk") or {}
    usage = " · ".join(f'{escape(name.replace("_", " "))} {escape(str(v["value"]))}'
                       f'{" / " + escape(str(v["limit"])) if v.get("limit") is not None else ""}'
                       for name, v in risk.items() if isinstance(v, Mapping) and "value" in v)
    return (f'<section><h2>Open orders</h2><table id="orders"><thead><tr><th>rule</th><th>pair</th><th>status</th>'
            f'<th>volume</th><th>price</th><th>filled</th><th>ids</th></tr></thead>'
            f'<tbody>{_rows(rows, 7, "no open orders placed by the engine")}</tbody></table>'
            f'<p class="muted">risk: {usage}</p></section>')


def _kill_state(doc: Mapping[str, Any]) -> str:
    switch = doc.get("kill_switch") or {}
    engaged = bool(switch.get("engaged"))
    detail = escape(str(switch.get("describe") or ""))
    return (f'<section><h2>Kill switch state</h2><p id="kill-state">'
            f'{_badge("engaged" if engaged else "clear", "engaged" if engaged else "ok")} {detail}</p></section>')


def _signals(doc: Mapping[str, Any]) -> str:
    rows = [f'<tr><td>{_time(s.get("time"))}</td><td>{escape(str(s.get("source")))}</td>'
            f'<td>{_flag(s.get("accepted"), "accepted", "rejected", no_css="rejected")}</td>'
            f'<td>{escape(str(s.get("signal_id") or ""))}</td>'
            f'<td>{escape(" ".join(str(x) for x in (s.get("status"), s.get("code"), s.get("reason")) if x))}</td></tr>'
            for s in doc.get("signals", [])[:20]]
    return (f'<section><h2>Recent signals</h2><table id="signals"><thead><tr><th>time</th><th>source</th>'
            f'<th>result</th><th>id</th><th>reason</th></tr></thead>'
            f'<tbody>{_rows(rows, 5, "no signal received")}</tbody></table></section>')


def _engine(doc: Mapping[str, Any]) -> str:
    readiness = doc.get("readiness") or {}
    problems = "".join(f'<li>{_badge(p["severity"])} <b>{escape(p["name"])}</b>: {escape(p["reason"])}</li>'
                       for p in readiness.get("problems", []))
    reload = doc.get("last_reload")
    reload_html = "no reload since start" if not reload else (
        f'{_time(reload.get("time"))} {_flag(reload.get("ok"), "applied", "refused")}'
        + "".join(f"<pre>{escape(str(e))}</pre>" for e in reload.get("errors", [])))
    channels = ", ".join((doc.get("notifications") or {}).get("channels", [])) or "none configured"
    health = _badge(doc.get("health"), element_id="live-health")
    return (f'<section><h2>Engine</h2><p>health {health} · readiness {_badge(readiness.get("status", "unknown"))}</p>'
            f'<ul id="problems">{problems}</ul><p>last reload: {reload_html}</p>'
            f'<p class="muted">notification channels: {escape(channels)}</p></section>')


def _standby(doc: Mapping[str, Any]) -> str:
    """While the engine stands by for its key (high availability): who holds the key."""
    standby = doc.get("standby")
    if not standby:
        return ""
    holder = standby.get("holder")
    held = ("nobody holds it yet" if not holder else
            f'held by <b>{escape(str(holder))}</b> (epoch {escape(str(standby.get("epoch")))}, lease '
            f'{"expired" if standby.get("expired") else "live"})')
    return (f'<section id="standby"><h2>{_badge("standing by", "standby")} key {escape(str(standby.get("key")))}'
            f'</h2><p>This engine waits for the key\'s lease and takes the key over when it lapses; it trades '
            f'nothing until then. The key is {held}.</p></section>')


def _seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} s"


def cluster_section(cluster: Mapping[str, Any] | None) -> str:
    """The keys of the PostgreSQL store (`rules-engine cluster status`); degraded keys highlighted."""
    if not cluster:
        return ""
    if cluster.get("error"):
        return (f'<section id="cluster"><h2>Cluster {_badge("unreadable", "error")}</h2>'
                f'<p>{escape(str(cluster["error"]))}</p></section>')
    rows = []
    for key in cluster.get("keys", []):
        lease = key.get("lease") or {}
        deliveries = key.get("deliveries") or {}
        lag = key.get("lag") or {}
        problem = key.get("problem")
        css = ' class="degraded"' if problem else ""
        expires = "—" if not lease else ("expired " + _seconds(-float(lease["expires_in"])) + " ago"
                                          if lease.get("expired") else "in " + _seconds(lease.get("expires_in")))
        rows.append(
            f'<tr data-key="{escape(str(key["key"]))}"{css}>'
            f'<td><b>{escape(str(key["key"]))}</b></td><td>{escape(str(key.get("holder") or "—"))}</td>'
            f'<td>{escape(str(key.get("epoch") or "—"))}</td><td>{_seconds(lease.get("age"))}</td><td>{expires}</td>'
            f'<td>{deliveries.get("pending", 0)}</td><td>{deliveries.get("taken", 0)}</td>'
            f'<td>{deliveries.get("done", 0)}</td><td>{deliveries.get("expired", 0)}</td>'
            f'<td>{_seconds(key.get("oldest_waiting"))}</td><td>{_seconds(lag.get("p50"))} / {_seconds(lag.get("max"))}'
            f'</td><td>{_badge("degraded") + " " + escape(str(problem)) if problem else _badge("ok")}</td></tr>')
    totals = cluster.get("totals") or {}
    summary = (f'{len(cluster.get("keys", []))} keys, {cluster.get("held", 0)} held; deliveries pending '
               f'{totals.get("pending", 0)}, taken {totals.get("taken", 0)}, done {totals.get("done", 0)}, '
               f'expired {totals.get("expired", 0)}')
    return (f'<section id="cluster"><h2>Cluster {_flag(cluster.get("ok"), "ok", "degraded", no_css="degraded")}'
            f'</h2><p class="muted">{escape(str(cluster.get("store")))}: {escape(summary)}</p>'
            f'<table><thead><tr><th>key</th><th>holder</th><th>epoch</th><th>lease age</th><th>lease expires</th>'
            f'<th>pending</th><th>taken</th><th>done</th><th>expired</th><th>oldest waiting</th>'
            f'<th>lag p50 / max (1 h)</th><th></th></tr></thead><tbody>{_rows(rows, 12, "no key in the store")}'
            f'</tbody></table></section>')


def render_trace(trace: Mapping[str, Any]) -> str:
    steps = []
    started = float(trace.get("started") or 0)
    for step in trace.get("steps", []):
        data = dict(step.get("data") or {})
        offset = (float(step.get("time") or started) - started) * 1000
        steps.append(f'<div class="step {escape(str(step.get("kind")))}"><b>{escape(str(step.get("kind")))}</b> '
                     f'<span class="muted">+{offset:.1f} ms · audit seq {escape(str(step.get("seq")))}'
                     f'</span>{_step_summary(str(step.get("kind")), data)}'
                     f'<details><summary class="muted">record</summary>'
                     f'<pre>{escape(json.dumps(data, indent=1, sort_keys=True, default=str))}</pre></details></div>')
    duration = float(trace.get("ended") or 0) - float(trace.get("started") or 0)
    seqs = [s for s in trace.get("seqs", []) if s is not None]
    show = (f"rules-engine audit show --rule {trace.get('rule_id')}" if not seqs else
            f"rules-engine audit show --rule {trace.get('rule_id')}  # records {min(seqs)}–{max(seqs)}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trace {escape(str(trace.get("id")))}</title>
<style>{_CSS}</style></head><body><header><h1><a href="/" style="color:#fff">rules-engine</a> ›
trace {escape(str(trace.get("id")))}</h1></header><main><section id="trace"><h2>Rule {escape(str(trace.get("rule_id")))}
{_badge(trace.get("outcome"), "muted")}</h2><p>started {_time(trace.get("started"))} · took {duration * 1000:.1f} ms ·
<code>{escape(show)}</code></p>{"".join(steps)}</section></main></body></html>"""


def _step_summary(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "trigger":
        parts = [f"{k} {data[k]}" for k in ("trigger", "value", "level", "direction", "state") if k in data]
    elif kind == "guard":
        values = data.get("values") or []
        parts = [f'{v.get("expression")} → {v.get("value")}' for v in values if isinstance(v, Mapping)]
        parts.insert(0, f'result {data.get("result")}')
    elif kind == "risk":
        parts = [f"limit {data.get('limit')}", f"value {data.get('value')}", f"allowed {data.get('allowed')}"]
    elif kind in ("request", "response"):
        request = data.get("request") if kind == "request" else data.get("result")
        parts = [json.dumps(request, default=str)[:200]] if request else []
    elif kind == "decision":
        parts = [f"{k} {data[k]}" for k in ("decision_id", "fire_seq", "action", "cl_ord_id", "outcome", "reason")
                 if data.get(k) is not None]
    elif kind == "intent":
        intent = data.get("intent") or {}
        parts = [f"{k} {intent[k]}" for k in ("kind", "intent_id") if k in intent]
    else:
        parts = [f"{k} {data[k]}" for k in ("type", "outcome", "reason", "pair", "side", "volume", "price", "asset",
                                            "balance", "minimum", "passed", "channel", "result", "attempts",
                                            "error", "status", "filled") if data.get(k) is not None]
    return f' <span>{escape(" · ".join(str(p) for p in parts))}</span>' if parts else ""

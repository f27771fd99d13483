"""The worker's status page at `/` (`worker_status`): the engine status page's look
(`status_page`), one row per key cell, the shared feeds, the cluster. Server-rendered; the
JavaScript fetches `/?part=live` every 2 s and swaps it in. The kill switch form posts to
`/kill` (every cell) or `/kill?key=K` with the admin token typed into the page; the page holds
no secret of its own and shows API keys only by their fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from rules_engine.service.status_page import (
    _CSS,
    HEADER_FOLLOWS_JS,
    _age,
    _badge,
    _flag,
    _rows,
    _time,
    cluster_section,
)

_JS = HEADER_FOLLOWS_JS + """
const refresh = async () => {
  try {
    const answer = await fetch('/?part=live', {cache: 'no-store'});
    if (answer.ok) { document.getElementById('live').innerHTML = await answer.text(); header(); }
  } catch (e) { /* the worker is restarting: try again */ }
};
const kill = async (action) => {
  const token = document.getElementById('kill-token').value;
  const key = document.getElementById('kill-key').value;
  const reason = document.getElementById('kill-reason').value || 'engaged from the worker status page';
  const out = document.getElementById('kill-result');
  const path = '/kill' + (action === 'clear' ? '/clear' : '') + (key ? '?key=' + encodeURIComponent(key) : '');
  const answer = await fetch(path, {method: 'POST', headers: {'Authorization': 'Bearer ' + token,
    'Content-Type': 'application/json'}, body: JSON.stringify({reason: reason, source: 'worker status page'})});
  let body = {};
  try { body = await answer.json(); } catch (e) {}
  const which = key ? 'cell ' + key : 'every cell';
  out.textContent = answer.ok ? 'kill switch ' + (action === 'clear' ? 'cleared' : 'engaged') + ': ' + which
                              : 'refused (' + answer.status + '): ' + (body.reason || body.error || '');
  out.className = answer.ok ? 'badge ok' : 'badge rejected';
  refresh();
};
document.getElementById('kill-engage').addEventListener('click', e => { e.preventDefault(); kill('engage'); });
document.getElementById('kill-clear').addEventListener('click', e => { e.preventDefault(); kill('clear'); });
setInterval(refresh, 2000);
"""

_STATE_CSS = {"holding": "ok", "standby": "standby", "starting": "muted", "failed": "failed", "stopped": "disabled"}


def render_worker_live(doc: Mapping[str, Any]) -> str:
    """The refreshed part: the worker's health and keys held (the header follows them), cells,
    feeds, the cluster of each store."""
    summary = (f'<p>health {_badge(doc.get("health"), element_id="live-health")} · holding '
               f'<span id="live-holding">{_holding(doc)}</span> keys</p>')
    return "".join([summary, _cells(doc), _feeds(doc), *(cluster_section(c) for c in doc.get("clusters", []))])


def _holding(doc: Mapping[str, Any]) -> str:
    return f'{len(doc.get("holding", []))} of {len(doc.get("cells", []))}'



def render_worker_page(doc: Mapping[str, Any], *, kill_enabled: bool) -> str:
    keys = "".join(f'<option value="{escape(c["key"])}">cell {escape(c["key"])}</option>' for c in doc.get("cells", []))
    hidden = "" if kill_enabled else " hidden"
    note = "" if kill_enabled else (
        '<p class="muted">No admin token is configured (kill_switch.token_env / token_file in the worker config or '
        'a cell\'s engine config): use <code>rules-engine kill --state-dir</code> on a cell\'s state dir.</p>')
    uptime = doc.get("uptime")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rules-engine worker status</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><header><h1>rules-engine worker</h1><span>health {_badge(doc.get("health"), element_id="health")}</span>
<span>{escape(str(doc.get("worker")))}</span><span>holding <span id="holding">{_holding(doc)}</span> keys</span>
<span class="muted">up {_age(uptime)}</span>
<span class="muted">v{escape(str(doc.get("version")))}</span></header>
<main><section id="kill"><h2>Kill switch</h2>{note}<form id="kill-form"{hidden}><label>admin token
<input id="kill-token" type="password" autocomplete="off"></label><label>cells <select id="kill-key">
<option value="">every cell</option>{keys}</select></label>
<label>reason <input id="kill-reason" type="text" maxlength="200"></label>
<button id="kill-engage">Engage kill switch</button><button id="kill-clear">Clear</button>
<span id="kill-result"></span></form></section>
<div id="live">{render_worker_live(doc)}</div></main><script>{_JS}</script></body></html>"""


def _cells(doc: Mapping[str, Any]) -> str:
    rows = []
    for cell in doc.get("cells", []):
        state = str(cell.get("state"))
        epoch = cell.get("epoch")
        lease = "—"
        if cell.get("holder"):
            lease = f'{escape(str(cell["holder"]))} <span class="muted">epoch {escape(str(cell.get("holder_epoch")))}'
            lease += f', age {_age(cell.get("lease_age"))}</span>'
        last = cell.get("last_decision")
        last_html = "—" if not last else (f'{_time(last.get("time"))} {escape(str(last.get("decision_id")))} '
                                          f'{_badge(last.get("outcome") or "running", "muted")}')
        deliveries = cell.get("deliveries") or {}
        lag = cell.get("lag") or {}
        delivery_html = "—" if not deliveries else (
            f'{deliveries.get("pending", 0) + deliveries.get("taken", 0)} waiting, {deliveries.get("done", 0)} done'
            f'<div class="muted">lag p50 {_age(lag.get("p50"))}, max {_age(lag.get("max"))}; oldest waiting '
            f'{_age(cell.get("oldest_waiting"))}</div>')
        switch = cell.get("kill_switch") or {}
        engaged = bool(switch.get("engaged"))
        why = cell.get("why_not_ready")
        orders = "—" if cell.get("open_orders") is None else \
            f'{cell["open_orders"]} open, {cell["in_flight"]} in flight'
        rows.append(
            f'<tr data-key="{escape(str(cell["key"]))}" data-state="{escape(state)}">'
            f'<td><b>{escape(str(cell["key"]))}</b><div class="muted">API key '
            f'{escape(str(cell.get("fingerprint") or "not set"))}</div></td>'
            f'<td>{_badge(state, _STATE_CSS.get(state, "muted"))}<div class="muted">{escape(str(cell.get("mode")))}'
            f'</div></td><td>{"—" if epoch is None else escape(str(epoch))}</td><td>{lease}</td>'
            f'<td>{last_html}</td><td>{orders}</td><td>{delivery_html}</td>'
            f'<td class="kill">{_badge("engaged" if engaged else "clear", "engaged" if engaged else "ok")}'
            f'<div class="muted">{escape(str(switch.get("reason") or "")) if engaged else ""}</div></td>'
            f'<td>{escape(str(why)) if why else _badge("ready", "ok")}</td></tr>')
    return (f'<section><h2>Cells</h2><table id="cells"><thead><tr><th>key</th><th>state</th><th>epoch</th>'
            f'<th>lease holder</th><th>last decision</th><th>orders</th><th>signal deliveries</th>'
            f'<th>kill switch</th><th>not ready because</th></tr></thead>'
            f'<tbody>{_rows(rows, 9, "no cells")}</tbody></table></section>')


def _feeds(doc: Mapping[str, Any]) -> str:
    rows = [f'<tr><td>{escape(market)}</td><td>{_flag(feed.get("connected"), "connected", "disconnected")}</td>'
            f'<td>{feed.get("subscribed")} of {feed.get("symbols")}</td><td>{_age(feed.get("last_tick_age"))}</td>'
            f'<td>{feed.get("reconnects")}</td></tr>'
            for market, feed in (doc.get("feeds") or {}).items()]
    return (f'<section><h2>Shared feeds</h2><table id="feeds"><thead><tr><th>market</th><th>connection</th>'
            f'<th>symbols subscribed</th><th>last tick</th><th>reconnects</th></tr></thead>'
            f'<tbody>{_rows(rows, 5, "no feed needed by the cells")}</tbody></table></section>')


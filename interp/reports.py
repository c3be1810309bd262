"""Feature reports from stored feature statistics: self-contained HTML, Neuronpedia-style JSON, Markdown.

* HTML: one file, inline CSS, one small fixed script (a filter box), charts as inline SVG;
  nothing is fetched, so it opens offline. Every value that comes from a file (tokens, labels,
  model/hook/source names, even numbers, which a crafted feature_stats.json could make strings)
  is HTML-escaped (`html.escape`), so ``<script>`` in any of them shows as text and never runs.
  The content-security policy allows no inline script but the report's own filter script, pinned
  by its SHA-256 hash (``script-src 'sha256-...'``): a script that got in anyway would not run.
* JSON: one object per feature with the field names of the Neuronpedia / SAEDashboard feature
  export (``activations`` with ``tokens``/``values``, ``pos_str``/``pos_values``,
  ``neg_str``/``neg_values``, ``frac_nonzero``, ``freq_hist_data_bar_heights``/``_values``,
  ``logits_hist_data_bar_heights``/``_values``, ``correlated_features_indices``/``_pearson``).
* Markdown: a short section per feature for notes.

`write_report` checks the output path before rendering and writes atomically (interp.io), so a
report is never half written.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from interp.errors import InterpError
from interp.features import Context, FeatureStore, FeatureView, Interval, feature_view

FORMATS = ("html", "json", "md")


def _shown(tok: str) -> str:
    """Make whitespace visible (a token of only spaces or a newline would vanish)."""
    return tok.replace("\n", "\u21b5").replace("\t", "\u21e5") or "\u2205"


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _hist_centres(edges: list[float]) -> list[float]:
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]


# ----------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px} h2{font-size:17px;margin:0 0 6px} .meta{color:#57606a;font-size:13px}
.feat{border:1px solid #d0d7de;border-radius:8px;padding:14px;margin:14px 0}
.grid{display:grid;grid-template-columns:1fr 1fr 1fr;gap:14px}
table{border-collapse:collapse;font-size:12.5px} td{padding:1px 6px} .pos{color:#1a7f37} .neg{color:#cf222e}
#filter{padding:4px 8px;width:320px;margin-bottom:8px}
"""
# Only class-scoped rules, so the dashboard can inline them next to its own styles.
CTX_CSS = """
.ctx{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;white-space:pre;overflow-x:auto;margin:2px 0}
.ctx.wrap{white-space:pre-wrap;line-height:1.9}
.tok{border-radius:3px;padding:0 1px} .peak{outline:1px solid #cf222e} .v{color:#57606a;font-size:11px}
.interval{margin:6px 0 10px} .interval-head{font-weight:600;font-size:13px;border-bottom:1px solid #d0d7de;margin-bottom:3px}
.chip{display:inline-block;font-family:ui-monospace,Menlo,monospace;font-size:12px;border-radius:10px;padding:1px 7px;margin:2px}
.chip.pos{background:#dafbe1;color:#116329} .chip.neg{background:#ffebe9;color:#a40e26}
.flag{font-size:11px;background:#fff8c5;border:1px solid #d4a72c;border-radius:8px;padding:0 6px;margin-left:6px;vertical-align:middle}
.pbars{font-size:13px;margin:4px 0} .pbar-title{font-weight:600;margin-bottom:4px}
.pbar-row{display:grid;grid-template-columns:minmax(90px,max-content) 1fr 52px;gap:8px;align-items:center;margin:2px 0}
.pbar-tok{font-family:ui-monospace,Menlo,monospace;white-space:pre;overflow:hidden;text-overflow:ellipsis;max-width:220px}
.pbar-bar{background:#eaeef2;height:14px;border-radius:3px;overflow:hidden} .pbar-bar span{display:block;height:100%;background:#0969da}
.pbar-val{text-align:right;font-variant-numeric:tabular-nums}
.tf{font-size:12.5px} .tf-row{display:grid;grid-template-columns:34px minmax(80px,max-content) 1fr;gap:8px;padding:2px 0;border-bottom:1px solid #eaeef2}
.tf-pos{color:#57606a} .tf-tok{font-family:ui-monospace,Menlo,monospace;white-space:pre}
.tf-feat{display:inline-block;background:#f6f8fa;border:1px solid #d0d7de;border-radius:10px;padding:0 7px;margin:1px 3px}
"""

_JS = """
document.getElementById('filter').addEventListener('input', function(){
  var q = this.value.toLowerCase();
  document.querySelectorAll('.feat').forEach(function(el){
    el.style.display = (el.dataset.label.toLowerCase().indexOf(q) >= 0 || el.id === 'f' + q) ? '' : 'none';
  });
});
"""
# the CSP admits exactly this script, by hash: no other inline script can run in a report
_JS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_JS.encode("utf-8")).digest()).decode("ascii")
CSP = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '{_JS_HASH}'"


def _num(x, fmt: str = "") -> str:
    """A number from a file, formatted; anything that is not a finite number is shown escaped as is."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _esc(x)
    try:
        return _esc(format(x, fmt))
    except (ValueError, TypeError):
        return _esc(x)


def _tok_span(tok: str, v: float, vmax: float, peak: bool) -> str:
    a = 0.0 if vmax <= 0 else max(0.0, min(1.0, v / vmax))
    cls = "tok peak" if peak else "tok"
    bg = f' style="background:#ff8c00{round(a * 255):02x}"' if a > 0 else ""
    return f'<span class="{cls}"{bg} title="{_esc(repr(tok))}: {v:.3g}">{_esc(_shown(tok))}</span>'


def contexts_html(contexts: list[Context], vmax: float) -> str:
    """Token-highlighted contexts (every token escaped, its value on hover); used by the dashboard too."""
    return "".join(_ctx_html(c, vmax) for c in contexts)


def _ctx_html(c: Context, vmax: float) -> str:
    spans = "".join(_tok_span(t, v, vmax, j == c.peak) for j, (t, v) in enumerate(zip(c.tokens, c.values)))
    return f'<div class="ctx"><span class="v">{c.value:7.3f}</span>  {spans}</div>'


def _interval_share(iv: Interval) -> str:
    """'12 firings (exact), 3.1%' where the top activations prove the count, else '≈38 firings, ≈1.6%'."""
    if iv.exact:
        return f"{iv.n_firings:,.0f} firings (exact), {100 * iv.share:.1f}% of all"
    return f"≈{iv.n_firings:,.0f} firings, ≈{100 * iv.share:.1f}% of all"


def intervals_html(intervals: list[Interval], vmax: float) -> str:
    """SAEDashboard-style activation intervals: a header per interval, then its samples."""
    out = []
    for iv in intervals:
        head = (f'<div class="interval-head">Interval {iv.lo:.3g} – {iv.hi:.3g}'
                f'<span class="v"> · {_interval_share(iv)} · {len(iv.samples)} shown</span></div>')
        out.append(f'<div class="interval">{head}{contexts_html(iv.samples, vmax)}</div>')
    return "".join(out)


def logit_chips_html(rows: list[tuple[str, float]], cls: str) -> str:
    """Promoted (cls='pos') or suppressed ('neg') tokens as chips, each with its logit effect."""
    return "".join(f'<span class="chip {cls}" title="{v:+.3f}">{_esc(_shown(t))} <b>{v:+.2f}</b></span>' for t, v in rows)


def token_values_html(tokens: list[str], values: list[float], vmax: float | None = None) -> str:
    """A prompt coloured by one feature's value on each token (the value on hover)."""
    m = vmax if vmax is not None else max([v for v in values if v > 0], default=0.0)
    spans = "".join(_tok_span(t, v, m, False) for t, v in zip(tokens, values))
    return f'<div class="ctx wrap" data-testid="token-values">{spans}</div>'


def prob_bars_html(rows: list[tuple[str, float]], title: str = "") -> str:
    """Next-token probabilities as labelled bars: every bar carries its token and value."""
    body = "".join(
        f'<div class="pbar-row"><span class="pbar-tok">{_esc(repr(t))}</span>'
        f'<span class="pbar-bar"><span style="width:{max(0.0, min(1.0, p)) * 100:.1f}%"></span></span>'
        f'<span class="pbar-val">{p:.3f}</span></div>' for t, p in rows)
    head = f'<div class="pbar-title">{_esc(title)}</div>' if title else ""
    return f'<div class="pbars" data-testid="prob-bars">{head}{body}</div>'


def token_features_html(tokens: list[str], per_token: list[list[tuple[int, float, str]]]) -> str:
    """One row per position: the token, then its top features as `#id: label (value)` chips."""
    rows = []
    for i, (tok, feats) in enumerate(zip(tokens, per_token)):
        chips = "".join(f'<span class="tf-feat" title="{v:.3f}">#{f}: {_esc(lab)} <b>{v:.2f}</b></span>' for f, v, lab in feats)
        rows.append(f'<div class="tf-row"><span class="tf-pos">{i}</span><span class="tf-tok">{_esc(_shown(tok))}</span>'
                    f'<span class="tf-feats">{chips or "<i>none</i>"}</span></div>')
    data = _esc(",".join(str(i) for i in range(len(tokens))))
    return f'<div class="tf" data-testid="token-features" data-tokens="{data}">{"".join(rows)}</div>'


def _svg_bars(heights: list[float], labels: tuple[str, str], color: str = "#0969da", w: int = 300, h: int = 90) -> str:
    n = max(len(heights), 1)
    top = max(heights) if heights and max(heights) > 0 else 1
    bw = w / n
    bars = "".join(
        f'<rect x="{i * bw:.1f}" y="{h - 14 - (v / top) * (h - 20):.1f}" width="{max(bw - 1, 0.5):.1f}" height="{(v / top) * (h - 20):.1f}" fill="{color}"/>'
        for i, v in enumerate(heights)
    )
    return (f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">{bars}'
            f'<text x="0" y="{h - 2}" font-size="10" fill="#57606a">{_esc(labels[0])}</text>'
            f'<text x="{w}" y="{h - 2}" font-size="10" fill="#57606a" text-anchor="end">{_esc(labels[1])}</text></svg>')


def feature_html(fv: FeatureView) -> str:
    """One feature's block (also used by the dashboard)."""
    e = fv.hist_edges
    act_svg = _svg_bars(fv.hist_counts, (f"1e{e[0]:.0f}", f"1e{e[-1]:.0f}"), "#fb8500")
    logit_svg = _svg_bars(fv.logit_hist, (f"{fv.logit_range[0]:.2f}", f"{fv.logit_range[1]:.2f}"), "#8250df") if fv.logit_hist else ""
    top = "".join(_ctx_html(c, fv.max_act) for c in fv.top) or "<p class='meta'>never fired</p>"
    samples = intervals_html(fv.intervals, fv.max_act) if fv.intervals else "".join(_ctx_html(c, fv.max_act) for c in fv.quantiles)
    corr = "".join(f"<tr><td>#{j}</td><td>{r:+.3f}</td><td>{_esc(lab)}</td></tr>" for j, r, lab in fv.correlated)
    flags = "".join(f' <span class="flag">{_esc(f)}</span>' for f in fv.flags)
    sides = (f'<div class="meta">input side: {_esc(" ".join(repr(t) for t in fv.label_inputs)) or "-"} · '
             f'output side (promotes): {_esc(" ".join(repr(t) for t in fv.label_outputs)) or "-"}</div>')
    return f"""<div class="feat" id="f{fv.id}" data-label="{_esc(fv.label)}">
<h2>Feature {fv.id}: {_esc(fv.label)}{flags}</h2>
{sides}
<div class="meta">firing frequency {fv.freq:.3e} · max activation {fv.max_act:.3f} · mean when firing {fv.mean_act:.3f}</div>
<div class="grid">
<div><b>Activation density</b> (log10 activation, firing tokens)<br>{act_svg}</div>
<div><b>Promotes</b><br>{logit_chips_html(fv.pos_logits, "pos")}</div>
<div><b>Suppresses</b><br>{logit_chips_html(fv.neg_logits, "neg")}</div>
</div>
<div class="grid"><div><b>Logit effects over the vocabulary</b><br>{logit_svg}</div>
<div style="grid-column:span 2"><b>Most correlated features</b><table>{corr}</table></div></div>
<h3>Top activations</h3>{top}
<h3>Samples across the activation distribution</h3>{samples}
</div>"""


def render_html(stats: FeatureStore, ids: list[int], title: str = "Feature report", header: str = "") -> str:
    blocks = "\n".join(feature_html(feature_view(stats, i)) for i in ids)
    m = stats.meta
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<style>{CSS}{CTX_CSS}</style></head><body>
<h1>{_esc(title)}</h1>
<div class="meta">model {_esc(m.get("model"))} · hook {_esc(m.get("hook"))} · source {_esc(m.get("source"))} ·
{_num(m.get("n_features"))} features · statistics over {_num(m.get("n_tokens"))} tokens of {_esc(m.get("corpus"))} · {len(ids)} features in this report</div>
{f'<div class="meta" data-testid="report-header">{_esc(header)}</div>' if header else ""}
<p><input id="filter" placeholder="filter by label or feature id"></p>
{blocks}
<script>{_JS}</script>
</body></html>
"""


# ----------------------------------------------------------------------------- JSON
def feature_json(fv: FeatureView, stats: FeatureStore) -> dict:
    m = stats.meta
    lo, hi = fv.logit_range
    nb = len(fv.logit_hist)
    logit_centres = [lo + (hi - lo) * (j + 0.5) / nb for j in range(nb)] if nb else []
    return {
        "modelId": m.get("model"),
        "layer": m.get("hook"),
        "index": fv.id,
        "explanation": fv.label,
        "explanation_f1": fv.label_f1,
        "maxActApprox": fv.max_act,
        "frac_nonzero": fv.freq,
        "pos_str": [t for t, _ in fv.pos_logits],
        "pos_values": [v for _, v in fv.pos_logits],
        "neg_str": [t for t, _ in fv.neg_logits],
        "neg_values": [v for _, v in fv.neg_logits],
        "freq_hist_data_bar_heights": fv.hist_counts,
        "freq_hist_data_bar_values": [10 ** c for c in _hist_centres(fv.hist_edges)],
        "logits_hist_data_bar_heights": fv.logit_hist,
        "logits_hist_data_bar_values": logit_centres,
        "correlated_features_indices": [j for j, _, _ in fv.correlated],
        "correlated_features_pearson": [r for _, r, _ in fv.correlated],
        "concept_f1": fv.category_f1,
        "flags": fv.flags,
        "label_inputs": fv.label_inputs,
        "label_outputs": fv.label_outputs,
        "intervals": [{"lo": iv.lo, "hi": iv.hi, "share": iv.share, "n_firings": iv.n_firings, "exact": iv.exact, "n_samples": len(iv.samples)} for iv in fv.intervals],
        "activations": [
            {"tokens": c.tokens, "values": c.values, "maxValue": c.value, "maxValueTokenIndex": c.peak, "kind": kind}
            for kind, cs in (("top", fv.top), ("quantile", fv.quantiles)) for c in cs
        ] + [
            {"tokens": c.tokens, "values": c.values, "maxValue": c.value, "maxValueTokenIndex": c.peak, "kind": "interval",
             "interval": [iv.lo, iv.hi]}
            for iv in fv.intervals for c in iv.samples
        ],
    }


def render_json(stats: FeatureStore, ids: list[int], title: str = "", header: str = "") -> str:
    m = stats.meta
    doc = {"title": title, "header": header, "model": m.get("model"), "hook": m.get("hook"), "source": m.get("source"),
           "n_tokens": m.get("n_tokens"), "features": [feature_json(feature_view(stats, i), stats) for i in ids]}
    return json.dumps(doc, indent=1)


# ----------------------------------------------------------------------------- Markdown
def _md(s: str) -> str:
    out = _shown(s)
    for ch in "\\`*_[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return out


def _md_bold(t: str) -> str:
    body = t.lstrip()
    return t[: len(t) - len(body)] + (f"**{_md(body)}**" if body else _md(t))


def render_md(stats: FeatureStore, ids: list[int], title: str = "Feature report", n_contexts: int = 5, header: str = "") -> str:
    m = stats.meta
    lines = [f"# {_md(title)}", "", f"model {_md(str(m.get('model')))}, hook {_md(str(m.get('hook')))}, {_md(str(m.get('n_tokens')))} tokens", ""]
    if header:
        lines += [_md(header), ""]
    for i in ids:
        fv = feature_view(stats, i)
        lines += [f"## Feature {fv.id}: {_md(fv.label)}", "",
                  f"- firing frequency {fv.freq:.3e}, max activation {fv.max_act:.3f}",
                  "- promotes: " + ", ".join(f"{_md(repr(t))} ({v:+.2f})" for t, v in fv.pos_logits[:5]),
                  "- suppresses: " + ", ".join(f"{_md(repr(t))} ({v:+.2f})" for t, v in fv.neg_logits[:5]),
                  "- correlated: " + ", ".join(f"#{j} (r={r:.2f})" for j, r, _ in fv.correlated), "",
                  "| activation | context |", "|---|---|"]
        for c in fv.top[:n_contexts]:
            text = "".join(_md_bold(t) if j == c.peak else _md(t) for j, t in enumerate(c.tokens))
            lines.append(f"| {c.value:.3f} | {text} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- files
def render(stats: FeatureStore, ids: list[int], fmt: str, title: str = "Feature report", header: str = "") -> str:
    """The report in `fmt`; `header` (optional) names the selection it was made from (dashboard exports)."""
    if fmt not in FORMATS:
        raise InterpError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    for i in ids:
        stats.check_id(i)
    if fmt == "html":
        return render_html(stats, ids, title, header)
    if fmt == "json":
        return render_json(stats, ids, title, header)
    return render_md(stats, ids, title, header=header)


def check_report_path(out: str | Path) -> Path:
    """Refuse an output path that cannot take a report, before anything is rendered."""
    from interp.io import check_output_file

    out = Path(out)
    if out.is_dir():
        raise InterpError(f"{out} is a directory; give a file name for the report")
    if out.exists() and not out.is_file():
        raise InterpError(f"{out} exists and is not a regular file")
    return check_output_file(out, overwrite=True, what="report")  # symlinks, devices; the CLI checks --overwrite


def write_report(stats: FeatureStore, ids: list[int], fmt: str, out: str | Path, title: str = "Feature report") -> Path:
    """Check the path, render, and write atomically (interp.io: temp sibling, then rename)."""
    from interp.io import atomic_write_text, os_error_message

    out = check_report_path(out)
    text = render(stats, ids, fmt, title)
    try:
        return atomic_write_text(out, text)
    except OSError as e:
        raise InterpError(f"cannot write the report {out}: {os_error_message(e)}") from None


# ----------------------------------------------------------------------------- tables for the dashboard
TABLE_CSS = """
.itable{border-collapse:collapse;font-size:13px;width:100%;table-layout:auto}
.itable th{text-align:left;border-bottom:2px solid #d0d7de;padding:4px 6px;white-space:normal;vertical-align:bottom}
.itable-wrap{overflow-x:auto;max-width:100%}
.itable td{border-bottom:1px solid #eaeef2;padding:3px 6px;vertical-align:top;white-space:nowrap}
.itable td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.itable td.path{font-family:ui-monospace,Menlo,monospace;font-size:12px;white-space:normal;overflow-wrap:normal;min-width:120px}
.itable td.warn{background:#fff8c5}
"""


def table_html(rows: list[dict], columns: list[tuple[str, str, str]], testid: str = "table", warn: set[tuple[int, str]] | None = None) -> str:
    """An HTML table of `rows`; `columns` = (key, header, css class: '', 'num' or 'path'). Every
    value is escaped (they come from files); numbers are shown with 4 significant digits."""
    warn = warn or set()

    def cell(r: int, key: str, cls: str, v) -> str:
        if isinstance(v, float):
            text = f"{v:.4g}"
        elif isinstance(v, bool):
            text = "yes" if v else "no"
        else:
            text = "" if v is None else str(v)
        classes = " ".join(c for c in (cls, "warn" if (r, key) in warn else "") if c)
        # names never break inside a word; a path may break only after a '/'
        shown = _esc(text).replace("/", "/<wbr>") if cls == "path" else _esc(text)
        return f'<td class="{classes}">{shown}</td>' if classes else f"<td>{shown}</td>"

    head = "".join(f"<th>{_esc(h)}</th>" for _, h, _ in columns)
    body = "".join("<tr>" + "".join(cell(i, k, c, row.get(k)) for k, _, c in columns) + "</tr>" for i, row in enumerate(rows))
    return (f'<div class="itable-wrap"><table class="itable" data-testid="{_esc(testid)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')

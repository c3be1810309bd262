"""Feature reports from stored feature statistics: self-contained HTML, Neuronpedia-style JSON, Markdown.

* HTML: one file, inline CSS and a few lines of inline JS (a filter box), charts as inline SVG;
  nothing is fetched, so it opens offline. Every token, label and string taken from the model's
  vocabulary or the corpus is HTML-escaped (`html.escape`), so a token like ``<script>`` shows as
  text and never runs.
* JSON: one object per feature with the field names of the Neuronpedia / SAEDashboard feature
  export (``activations`` with ``tokens``/``values``, ``pos_str``/``pos_values``,
  ``neg_str``/``neg_values``, ``frac_nonzero``, ``freq_hist_data_bar_heights``/``_values``,
  ``logits_hist_data_bar_heights``/``_values``, ``correlated_features_indices``/``_pearson``).
* Markdown: a short section per feature for notes.

`write_report` writes to a temp file and renames it, so a report is never half written.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from interp.errors import InterpError
from interp.features import Context, FeatureStats, FeatureView, feature_view

FORMATS = ("html", "json", "md")


def _shown(tok: str) -> str:
    """Make whitespace visible (a token of only spaces or a newline would vanish)."""
    return tok.replace("\n", "\u21b5").replace("\t", "\u21e5") or "\u2205"


def _esc(s: str) -> str:
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
.tok{border-radius:3px;padding:0 1px} .peak{outline:1px solid #cf222e} .v{color:#57606a;font-size:11px}
"""

_JS = """
document.getElementById('filter').addEventListener('input', function(){
  var q = this.value.toLowerCase();
  document.querySelectorAll('.feat').forEach(function(el){
    el.style.display = (el.dataset.label.toLowerCase().indexOf(q) >= 0 || el.id === 'f' + q) ? '' : 'none';
  });
});
"""


def _tok_span(tok: str, v: float, vmax: float, peak: bool) -> str:
    a = 0.0 if vmax <= 0 else max(0.0, min(1.0, v / vmax))
    cls = "tok peak" if peak else "tok"
    bg = f' style="background:#ff8c00{round(a * 255):02x}"' if a > 0 else ""
    return f'<span class="{cls}"{bg} title="{v:.3g}">{_esc(_shown(tok))}</span>'


def contexts_html(contexts: list[Context], vmax: float) -> str:
    """Token-highlighted contexts (every token escaped); used by the dashboard too."""
    return "".join(_ctx_html(c, vmax) for c in contexts)


def _ctx_html(c: Context, vmax: float) -> str:
    spans = "".join(_tok_span(t, v, vmax, j == c.peak) for j, (t, v) in enumerate(zip(c.tokens, c.values)))
    return f'<div class="ctx"><span class="v">{c.value:7.3f}</span>  {spans}</div>'


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


def _logit_table(rows: list[tuple[str, float]], cls: str) -> str:
    return "<table>" + "".join(f'<tr><td class="{cls}">{_esc(repr(t))}</td><td>{v:+.3f}</td></tr>' for t, v in rows) + "</table>"


def feature_html(fv: FeatureView) -> str:
    """One feature's block (also used by the dashboard)."""
    e = fv.hist_edges
    act_svg = _svg_bars(fv.hist_counts, (f"1e{e[0]:.0f}", f"1e{e[-1]:.0f}"), "#fb8500")
    logit_svg = _svg_bars(fv.logit_hist, (f"{fv.logit_range[0]:.2f}", f"{fv.logit_range[1]:.2f}"), "#8250df") if fv.logit_hist else ""
    top = "".join(_ctx_html(c, fv.max_act) for c in fv.top) or "<p class='meta'>never fired</p>"
    quant = "".join(_ctx_html(c, fv.max_act) for c in fv.quantiles)
    corr = "".join(f"<tr><td>#{j}</td><td>{r:+.3f}</td><td>{_esc(lab)}</td></tr>" for j, r, lab in fv.correlated)
    return f"""<div class="feat" id="f{fv.id}" data-label="{_esc(fv.label)}">
<h2>Feature {fv.id}: {_esc(fv.label)}</h2>
<div class="meta">firing frequency {fv.freq:.3e} · max activation {fv.max_act:.3f} · mean when firing {fv.mean_act:.3f}</div>
<div class="grid">
<div><b>Activation density</b> (log10 activation, firing tokens)<br>{act_svg}</div>
<div><b>Promoted tokens</b>{_logit_table(fv.pos_logits, "pos")}</div>
<div><b>Suppressed tokens</b>{_logit_table(fv.neg_logits, "neg")}</div>
</div>
<div class="grid"><div><b>Logit effects over the vocabulary</b><br>{logit_svg}</div>
<div style="grid-column:span 2"><b>Most correlated features</b><table>{corr}</table></div></div>
<h3>Top activations</h3>{top}
<h3>Samples across the activation distribution</h3>{quant}
</div>"""


def render_html(stats: FeatureStats, ids: list[int], title: str = "Feature report") -> str:
    blocks = "\n".join(feature_html(feature_view(stats, i)) for i in ids)
    m = stats.meta
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>{CSS}{CTX_CSS}</style></head><body>
<h1>{_esc(title)}</h1>
<div class="meta">model {_esc(m.get("model"))} · hook {_esc(m.get("hook"))} · source {_esc(m.get("source"))} ·
{m.get("n_features")} features · statistics over {m.get("n_tokens")} tokens of {_esc(m.get("corpus"))} · {len(ids)} features in this report</div>
<p><input id="filter" placeholder="filter by label or feature id"></p>
{blocks}
<script>{_JS}</script>
</body></html>
"""


# ----------------------------------------------------------------------------- JSON
def feature_json(fv: FeatureView, stats: FeatureStats) -> dict:
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
        "activations": [
            {"tokens": c.tokens, "values": c.values, "maxValue": c.value, "maxValueTokenIndex": c.peak, "kind": kind}
            for kind, cs in (("top", fv.top), ("quantile", fv.quantiles)) for c in cs
        ],
    }


def render_json(stats: FeatureStats, ids: list[int]) -> str:
    m = stats.meta
    doc = {"model": m.get("model"), "hook": m.get("hook"), "source": m.get("source"), "n_tokens": m.get("n_tokens"),
           "features": [feature_json(feature_view(stats, i), stats) for i in ids]}
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


def render_md(stats: FeatureStats, ids: list[int], title: str = "Feature report", n_contexts: int = 5) -> str:
    m = stats.meta
    lines = [f"# {_md(title)}", "", f"model `{m.get('model')}`, hook `{m.get('hook')}`, {m.get('n_tokens')} tokens", ""]
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
def render(stats: FeatureStats, ids: list[int], fmt: str, title: str = "Feature report") -> str:
    if fmt not in FORMATS:
        raise InterpError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    for i in ids:
        stats.check_id(i)
    if fmt == "html":
        return render_html(stats, ids, title)
    if fmt == "json":
        return render_json(stats, ids)
    return render_md(stats, ids, title)


def write_report(stats: FeatureStats, ids: list[int], fmt: str, out: str | Path, title: str = "Feature report") -> Path:
    """Render and write atomically (temp file in the same directory, then rename)."""
    text = render(stats, ids, fmt, title)
    out = Path(out)
    if out.is_dir():
        raise InterpError(f"{out} is a directory; give a file name for the report")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out

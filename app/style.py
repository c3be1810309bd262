"""One style for every page and chart: a dense, wide desktop layout and readable altair charts.

* `page_css()`: compact header and paddings, the status bar as one line, tables that scroll
  instead of cutting columns.
* `style_chart(c)`: fonts and sizes, axis and legend labels never truncated (labelLimit 0),
  titles never cut, and a colour-blind-safe categorical palette (Okabe & Ito, 2008) for every
  chart; `SEQUENTIAL` / `DIVERGING` are the schemes for quantities.
* `text(s)`: a string from a file or the user, shown as plain text (never Markdown or LaTeX).
"""

from __future__ import annotations

import html

import streamlit as st

# Okabe & Ito's colour-blind-safe palette (black last), then two more distinct greys for long lists
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999", "#666666"]
SEQUENTIAL = "viridis"  # perceptually uniform, readable in grey and by colour-blind readers
DIVERGING = "blueorange"
FONT_SIZE = 12
TITLE_SIZE = 13
CHART_HEIGHT = 220  # default plot height (px): plot areas never collapse to a sliver

CSS = """
.block-container{padding-top:2.2rem;padding-bottom:1rem;padding-left:1.6rem;padding-right:1.6rem;max-width:100%}
h1{font-size:1.45rem !important;padding:0 0 .2rem 0 !important;margin:0 !important}
h2{font-size:1.15rem !important;padding:.3rem 0 .1rem 0 !important}
h3{font-size:1.02rem !important;padding:.25rem 0 .1rem 0 !important}
[data-testid="stVerticalBlock"]{gap:.55rem}
.st-key-status-bar{position:sticky;top:0;z-index:5;background:var(--background-color, #fff);border-bottom:1px solid #d0d7de;
  padding:2px 0 0 0;margin-top:-.6rem}
.st-key-status-bar p{font-size:12.5px;margin:0;white-space:nowrap;overflow-x:auto}
[data-testid="stSidebarContent"]{padding-top:.4rem}
[data-testid="stSidebarUserContent"]{padding-top:.4rem}
[data-testid="stMetricValue"]{font-size:1.25rem}
.rhead{font-size:12.5px;color:#57606a;margin:0 0 2px 0;white-space:normal}
"""


def page_css() -> None:
    st.html(f"<style>{CSS}</style>")


def text(s) -> str:
    """`s` escaped for st.html: shown exactly as written (no Markdown, no LaTeX)."""
    return html.escape(str(s))


_MD_SPECIAL = "\\`*_{}[]()<>#+-.!|$~:"


def md_text(s) -> str:
    """`s` for a place Streamlit renders as Markdown (button labels, captions): every Markdown and
    LaTeX character escaped, so a label from a file shows exactly as written."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(s))


def result_header(line: str) -> None:
    """The one line every result carries (app/state.py `Selection.header`), as plain text."""
    st.html(f'<p class="rhead" data-testid="result-header">{text(line)}</p>')


def style_chart(c):
    """Apply the house style to a top-level altair chart (returns it)."""
    try:
        return (c.configure(font="sans-serif")
                .configure_axis(labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, labelLimit=0, titleLimit=0, labelOverlap=True)
                .configure_legend(labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, labelLimit=0, titleLimit=0, orient="bottom",
                                  columns=4, symbolLimit=0)
                .configure_header(labelLimit=0, titleLimit=0, labelFontSize=FONT_SIZE)
                .configure_title(fontSize=TITLE_SIZE, limit=0, anchor="start", subtitleFontSize=FONT_SIZE)
                .configure_range(category=PALETTE)
                .configure_view(continuousHeight=CHART_HEIGHT))
    except (AttributeError, ValueError):  # a chart that is already configured, or not a top-level chart
        return c

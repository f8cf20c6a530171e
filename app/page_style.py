"""How every page looks: fonts that cover Hangul and a layout that stays usable on a phone.

    gr.mount_gradio_app(server, demo, path="/", theme=theme(), css=CSS)     # app/ui.build_server

Gradio's default font, IBM Plex Sans, has no Hangul: a Korean answer fell back to whatever the browser picked,
and where it had nothing, to boxes. The stack below keeps IBM Plex for Latin text (served by Gradio itself)
and names the usual Korean fonts of each system after it; a browser takes each character from the first font
that has it, so the page never depends on one font being installed.
"""
from __future__ import annotations

HANGUL_FONTS = ("Noto Sans KR", "Noto Sans CJK KR", "Source Han Sans KR", "Apple SD Gothic Neo", "Malgun Gothic",
                "NanumGothic", "Nanum Gothic")

# Narrow screens (a 420 px phone): rows wrap instead of squeezing each control to a sliver, a dropdown keeps
# room for its label beside the arrow, and wide tables scroll inside themselves instead of widening the page.
CSS = """
@media (max-width: 640px) {
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  .gradio-container .row, .gradio-container .form { flex-wrap: wrap !important; }
  .gradio-container .row > *, .gradio-container .form > * {
    min-width: min(100%, 260px) !important; flex: 1 1 100% !important;
  }
  .gradio-container label span, .gradio-container .block-title {
    white-space: normal !important; padding-right: 28px;
  }
  .gradio-container .table-wrap, .gradio-container .table-container { overflow-x: auto !important; max-width: 100%; }
  .gradio-container .tab-wrapper, .gradio-container [role="tablist"] { flex-wrap: wrap !important; }
}
.gradio-container .table-wrap { overflow-x: auto; max-width: 100%; }
"""


def theme():
    """Gradio's default theme with a font stack that covers Hangul (and falls back to the system's sans-serif)."""
    import gradio as gr

    return gr.themes.Default(font=[gr.themes.LocalFont("IBM Plex Sans"), *HANGUL_FONTS, "ui-sans-serif", "system-ui",
                                   "sans-serif"])

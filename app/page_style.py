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

# Narrow screens (a 420 px phone): rows wrap instead of squeezing each control to a sliver (a dropdown's value
# was cut under its arrow), and wide tables scroll inside themselves instead of widening the page. Gradio scopes
# these rules to the app's container itself, so they name no container.
CSS = """
@media (max-width: 640px) {
  .row, .form { flex-wrap: wrap !important; }
  .row > *, .form > * { min-width: min(100%, 280px) !important; flex: 1 1 100% !important; }
  label span, .block-title { white-space: normal !important; }
  .wrap-inner input { text-overflow: ellipsis; padding-right: 4px; }
  .table-wrap, .table-container { overflow-x: auto !important; max-width: 100%; }
}
.table-wrap { overflow-x: auto; max-width: 100%; }
"""


def theme():
    """Gradio's default theme with a font stack that covers Hangul (and falls back to the system's sans-serif)."""
    import gradio as gr

    return gr.themes.Default(font=[gr.themes.LocalFont("IBM Plex Sans"), *HANGUL_FONTS, "ui-sans-serif", "system-ui",
                                   "sans-serif"])


def empty_number(**kw):
    """A gr.Number whose box is empty until it gets a value. Gradio draws a None value as "0" (gradio issue #6728),
    which reads as "cluster 0" or "run 0"; an initial value given as a function returning None is drawn empty."""
    import gradio as gr

    return gr.Number(_nothing, **kw)


def _nothing() -> None:
    return None

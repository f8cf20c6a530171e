"""Curate tab: filter the samples, page through them, review one at a time (keyboard: A approve, R reject,
S skip), edit (the original is kept, the sample revalidated), and change every match of a filter at once with a
confirmation and an undo. Clusters, statistics, splits and files live in app/curate_tools.py.

    moodshelf serve      # then open the Curate tab
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from pydantic import ValidationError

from app.curate_tools import build_curate_tools
from app.curate_view import TABLE_HEADERS, page_summary, sample_markdown, table_rows
from app.page_style import empty_number
from app.services import Services
from datagen.review import EDITABLE, ReviewError, edit_sample, revert_sample
from db.curation import (SORTS, CurationError, SampleFilter, bulk_set_status, count, filter_options, get_sample,
                         last_undoable, page, set_status, undo_last_bulk)
from db.models import SAMPLE_STATUSES

FLAG_KINDS = ["", "format", "length", "language", "repeated", "ungrounded", "near_duplicate"]
PAGE_SIZES = [25, 50, 100, 200]
# Key -> button. Ignored while typing in a field, so editing text never approves a sample by accident.
SHORTCUTS_JS = """
() => {
  if (window.__moodshelfCurateKeys) return;
  window.__moodshelfCurateKeys = true;
  const keys = {a: "cur_approve", r: "cur_reject", s: "cur_skip"};
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const btn = document.getElementById(keys[e.key.toLowerCase()]);
    if (btn && btn.offsetParent !== null) { e.preventDefault(); btn.click(); }
  });
}
"""


@dataclass
class FilterForm:
    """The filter widgets, in SampleFilter's field order; `to_filter` turns their values into the shared object."""

    components: list
    text: gr.Textbox

    @staticmethod
    def to_filter(statuses, providers, models, prompt_versions, languages, emotion, occupation, effect, grounded,
                  duplicates, cluster_id, flag, text, split, edited) -> SampleFilter:
        try:
            return SampleFilter(statuses=statuses or [], providers=providers or [], models=models or [],
                                prompt_versions=prompt_versions or [], languages=languages or [],
                                emotion=emotion or "", occupation=occupation or "", effect=effect or "",
                                grounded=grounded or "any", duplicates=duplicates or "any",
                                # An emptied number box sends 0; cluster ids are sample ids, never 0.
                                cluster_id=int(cluster_id) if cluster_id not in (None, "", 0) else None,
                                flag=(flag or "").strip(), text=(text or "").strip(), split=split or "any",
                                edited=edited or "any")
        except ValidationError as e:
            raise gr.Error("; ".join(er["msg"].removeprefix("Value error, ") for er in e.errors()))


def _filter_form() -> FilterForm:
    with gr.Row():
        statuses = gr.CheckboxGroup(list(SAMPLE_STATUSES), label="Status", elem_id="cur_status")
        providers = gr.Dropdown([], multiselect=True, label="Provider", elem_id="cur_provider")
        models = gr.Dropdown([], multiselect=True, label="Model", elem_id="cur_model")
        versions = gr.Dropdown([], multiselect=True, label="Prompt version", elem_id="cur_prompt_version")
        languages = gr.Dropdown([], multiselect=True, label="Language", elem_id="cur_language")
    with gr.Row():
        emotion = gr.Dropdown([], value=None, allow_custom_value=True, label="Emotion", elem_id="cur_emotion")
        occupation = gr.Dropdown([], value=None, allow_custom_value=True, label="Occupation", elem_id="cur_occupation")
        effect = gr.Dropdown([], value=None, allow_custom_value=True, label="Effect", elem_id="cur_effect")
        flag = gr.Dropdown(FLAG_KINDS, value="", allow_custom_value=True, label="Validation flag contains",
                           elem_id="cur_flag")
        cluster = empty_number(precision=0, label="Duplicate cluster", elem_id="cur_cluster")
    with gr.Row():
        grounded = gr.Radio(["any", "yes", "no"], value="any", label="Grounded (every book in the catalog)",
                            elem_id="cur_grounded")
        duplicates = gr.Radio(["any", "yes", "no"], value="any", label="In a near-duplicate cluster",
                              elem_id="cur_duplicates")
        split = gr.Radio(["any", "train", "eval", "none"], value="any", label="Split", elem_id="cur_split")
        edited = gr.Radio(["any", "yes", "no"], value="any", label="Edited", elem_id="cur_edited")
    text = gr.Textbox(label="Text search (instruction, input, answer)", elem_id="cur_text")
    return FilterForm([statuses, providers, models, versions, languages, emotion, occupation, effect, grounded,
                       duplicates, cluster, flag, text, split, edited], text)


@dataclass
class ReviewView:
    """The Review sub-tab's components: the page of matches, the bulk action, and the focused sample."""

    form: FilterForm
    sort: gr.Dropdown
    page_size: gr.Dropdown
    page_no: gr.Number
    search: gr.Button
    prev_page: gr.Button
    next_page: gr.Button
    summary: gr.Markdown
    table: gr.Dataframe
    page_ids: gr.State
    bulk_status: gr.Radio
    bulk_preview: gr.Button
    bulk_confirm: gr.Button
    bulk_cancel: gr.Button
    undo: gr.Button
    bulk_message: gr.Markdown
    pending_bulk: gr.State
    sample_id: gr.Number
    open_btn: gr.Button
    approve: gr.Button
    reject: gr.Button
    skip: gr.Button
    focus_message: gr.Markdown
    rendered: gr.Markdown
    raw: gr.Code
    edits: dict
    save: gr.Button
    revert: gr.Button

    @property
    def focus_outputs(self) -> list:
        return [self.rendered, self.raw, *self.edits.values()]

    @property
    def page_inputs(self) -> list:
        return [*self.form.components, self.sort, self.page_size, self.page_no]

    @property
    def page_outputs(self) -> list:
        return [self.summary, self.table, self.page_ids, self.page_no]

    @property
    def bulk_outputs(self) -> list:
        return [self.bulk_message, self.bulk_confirm, self.bulk_cancel, self.pending_bulk]


def build_curate_tab(services: Services, demo: gr.Blocks) -> None:
    with gr.Tab("Curate", id="curate"):
        with gr.Tabs():
            with gr.Tab("Review", id="curate_review"):
                view = _review_layout()
            build_curate_tools(services, view.form)  # Clusters, Statistics, Split & files: tabs beside Review
    refresh = _wire_paging(services, view)
    _wire_focus(services, view, refresh)
    _wire_bulk(services, view, refresh)
    demo.load(_choices_loader(services), None, view.form.components[1:8]).then(**refresh)
    demo.load(None, None, None, js=SHORTCUTS_JS)


def _review_layout() -> ReviewView:
    form = _filter_form()
    with gr.Row():
        sort = gr.Dropdown(list(SORTS), value="newest", label="Sort", elem_id="cur_sort")
        page_size = gr.Dropdown(PAGE_SIZES, value=50, label="Rows per page", elem_id="cur_page_size")
        page_no = gr.Number(1, precision=0, label="Page", elem_id="cur_page")
        search = gr.Button("Search", variant="primary", elem_id="cur_search")
        prev_page = gr.Button("◀ Previous", elem_id="cur_prev_page")
        next_page = gr.Button("Next ▶", elem_id="cur_next_page")
    summary = gr.Markdown(elem_id="cur_summary")
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=False, elem_id="cur_table")
    page_ids = gr.State([])

    with gr.Accordion("Bulk action on every match of the filter (not only this page)", open=False):
        with gr.Row():
            bulk_status = gr.Radio(list(SAMPLE_STATUSES), value="approved", label="Set status to",
                                   elem_id="cur_bulk_status")
            bulk_preview = gr.Button("Apply to all matches…", elem_id="cur_bulk_preview")
            bulk_confirm = gr.Button("Confirm", variant="stop", visible=False, elem_id="cur_bulk_confirm")
            bulk_cancel = gr.Button("Cancel", visible=False, elem_id="cur_bulk_cancel")
            undo = gr.Button("Undo last bulk action", elem_id="cur_undo")
        bulk_message = gr.Markdown(elem_id="cur_bulk_message")
        pending_bulk = gr.State(None)

    gr.Markdown("### Focus — one sample at a time · keys: **A** approve · **R** reject · **S** skip")
    with gr.Row():
        sample_id = empty_number(precision=0, label="Sample id", elem_id="cur_sample_id")
        open_btn = gr.Button("Open", elem_id="cur_open")
        approve = gr.Button("Approve (A)", variant="primary", elem_id="cur_approve")
        reject = gr.Button("Reject (R)", variant="stop", elem_id="cur_reject")
        skip = gr.Button("Skip (S)", elem_id="cur_skip")
    focus_message = gr.Markdown(elem_id="cur_focus_message")
    with gr.Row():
        with gr.Column():
            rendered = gr.Markdown(elem_id="cur_rendered")
            with gr.Accordion("Raw provider output", open=False):
                raw = gr.Code(label="raw output", language=None, elem_id="cur_raw")
        with gr.Column():
            edits = {name: gr.Textbox(label=name, lines=12 if name == "output" else
                                      3 if name in ("instruction", "input") else 1,
                                      elem_id=f"cur_edit_{name}") for name in EDITABLE}
            with gr.Row():
                save = gr.Button("Save edit", variant="primary", elem_id="cur_save")
                revert = gr.Button("Revert to original", elem_id="cur_revert")
    return ReviewView(form, sort, page_size, page_no, search, prev_page, next_page, summary, table, page_ids,
                      bulk_status, bulk_preview, bulk_confirm, bulk_cancel, undo, bulk_message, pending_bulk,
                      sample_id, open_btn, approve, reject, skip, focus_message, rendered, raw, edits, save, revert)


def _choices_loader(services: Services):
    def refresh_choices():
        o = filter_options(services.db)
        return (gr.Dropdown(choices=o["providers"]), gr.Dropdown(choices=o["models"]),
                gr.Dropdown(choices=o["prompt_versions"]), gr.Dropdown(choices=o["languages"]),
                gr.Dropdown(choices=o["emotions"]), gr.Dropdown(choices=o["occupations"]),
                gr.Dropdown(choices=o["effects"]))
    return refresh_choices


def _wire_paging(services: Services, view: ReviewView) -> dict:
    """Search, Previous, Next. Returns the page-reload event spec the other sections chain after a change."""
    def load_page(*values):
        *fvals, sort_by, size, number = values
        f = view.form.to_filter(*fvals)
        size = int(size or 50)
        try:
            p = page(services.db, f, sort_by, (max(1, int(number or 1)) - 1) * size, size)
        except CurationError as e:
            raise gr.Error(str(e))
        return page_summary(p, f.describe()), table_rows(p), [s.id for s in p.rows], p.page_number

    def first_page(*values):
        return load_page(*values[:-1], 1)

    refresh = dict(fn=load_page, inputs=view.page_inputs, outputs=view.page_outputs)
    view.search.click(first_page, view.page_inputs, view.page_outputs, api_name="curate_search")
    view.form.text.submit(first_page, view.page_inputs, view.page_outputs)  # Enter in the text search
    view.prev_page.click(lambda n: max(1, int(n or 1) - 1), view.page_no, view.page_no).then(**refresh)
    view.next_page.click(lambda n: int(n or 1) + 1, view.page_no, view.page_no).then(**refresh)
    return refresh


def _wire_focus(services: Services, view: ReviewView, refresh: dict) -> None:
    """One sample at a time: open, approve / reject / skip (then the next row), edit, revert."""
    db = services.db

    def show(sid):
        if sid in (None, ""):
            return ("*Pick a row in the table, or type a sample id.*", "", *[""] * len(EDITABLE))
        try:
            s = get_sample(db, int(sid))
        except CurationError as e:
            raise gr.Error(str(e))
        cards = services.book_cards(s.output, s.language)
        return (sample_markdown(s, cards), s.raw_output or "", *[getattr(s, k) or "" for k in EDITABLE])

    def on_select(ids, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        sid = ids[row] if ids and 0 <= row < len(ids) else None
        return sid, *show(sid), ""

    def next_after(sid, ids):
        if sid in ids and ids.index(sid) + 1 < len(ids):
            return ids[ids.index(sid) + 1]
        return None

    def decide(status):
        def handler(sid, ids):
            if sid in (None, ""):
                raise gr.Error("No sample open: pick a row in the table first.")
            sid = int(sid)
            if status:
                try:
                    set_status(db, sid, status)
                except CurationError as e:
                    raise gr.Error(str(e))
            nxt = next_after(sid, ids)
            done = f"#{sid} {status}." if status else f"#{sid} skipped."
            if nxt is None:
                return sid, *show(sid), done + " End of this page: go to the next page for more."
            return nxt, *show(nxt), done
        return handler

    def save_edit(sid, *values):
        if sid in (None, ""):
            raise gr.Error("No sample open: pick a row in the table first.")
        try:
            result = edit_sample(db, int(sid), dict(zip(EDITABLE, values)), index=services.index())
        except ReviewError as e:
            raise gr.Error(str(e))
        return *show(sid), result.message()

    def revert_edit(sid):
        try:
            revert_sample(db, int(sid))
        except (ReviewError, TypeError, ValueError) as e:
            raise gr.Error(str(e) if isinstance(e, ReviewError) else "No sample open.")
        return *show(sid), f"Sample #{int(sid)} reverted to its original."

    focus = [*view.focus_outputs, view.focus_message]
    view.table.select(on_select, view.page_ids, [view.sample_id, *focus])
    view.open_btn.click(lambda sid: (*show(sid), ""), view.sample_id, focus, api_name="curate_open")
    for button, status in ((view.approve, "approved"), (view.reject, "rejected"), (view.skip, None)):
        event = button.click(decide(status), [view.sample_id, view.page_ids], [view.sample_id, *focus],
                             api_name=f"curate_{status or 'skip'}")
        if status:
            event.then(**refresh)
    view.save.click(save_edit, [view.sample_id, *view.edits.values()], focus, api_name="curate_save").then(**refresh)
    view.revert.click(revert_edit, view.sample_id, focus, api_name="curate_revert").then(**refresh)


def _wire_bulk(services: Services, view: ReviewView, refresh: dict) -> None:
    """Every match of the filter at once: preview with the count, confirm, cancel, undo the last one."""
    db = services.db

    def preview_bulk(status, *fvals):
        f = view.form.to_filter(*fvals)
        n = count(db, f)
        if not n:
            return ("No sample matches the filter: nothing to change.", gr.Button(visible=False),
                    gr.Button(visible=False), None)
        msg = (f"Set **{n:,} samples** ({f.describe()}) to **{status}**? This changes every match of the filter, "
               f"not only the page shown. *Undo last bulk action* can reverse it.")
        return (msg, gr.Button(f"Confirm: set {n:,} to {status}", visible=True), gr.Button(visible=True),
                {"filter": f.model_dump(), "status": status})

    def confirm_bulk(pending):
        if not pending:
            raise gr.Error("Nothing to confirm: press *Apply to all matches…* first.")
        action = bulk_set_status(db, SampleFilter(**pending["filter"]), pending["status"])
        return (f"Done: {action.row_count:,} samples set to **{action.new_status}** (action #{action.id}).",
                gr.Button(visible=False), gr.Button(visible=False), None)

    def cancel_bulk():
        return "Cancelled: nothing changed.", gr.Button(visible=False), gr.Button(visible=False), None

    def undo_bulk():
        try:
            action = undo_last_bulk(db)
        except CurationError as e:
            raise gr.Error(str(e))
        nxt = last_undoable(db)
        return (f"Undone: action #{action.id} ({action.description}) — {action.row_count:,} samples have their "
                f"previous status back." + (f" The next undo would reverse #{nxt.id}." if nxt else ""))

    view.bulk_preview.click(preview_bulk, [view.bulk_status, *view.form.components], view.bulk_outputs,
                            api_name="curate_bulk_preview")
    view.bulk_confirm.click(confirm_bulk, view.pending_bulk, view.bulk_outputs,
                            api_name="curate_bulk_confirm").then(**refresh)
    view.bulk_cancel.click(cancel_bulk, None, view.bulk_outputs)
    view.undo.click(undo_bulk, None, view.bulk_message, api_name="curate_undo").then(**refresh)

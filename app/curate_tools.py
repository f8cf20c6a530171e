"""The Curate tab's other panels: near-duplicate clusters (keep one, reject the rest), statistics with charts,
the train/eval split, and import / export of sample files. The statistics and the export follow the Review
panel's filter."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from app.curate_view import cluster_html, counts_frame, rates_rows, split_markdown
from app.services import Services
from datagen.exchange import FORMATS, ExchangeError, export_samples, import_samples
from db.curation import (CurationError, SampleFilter, cluster_members, clusters, count, keep_one,
                         split_counts)
from db.curation_stats import counts_by, rates_by_model, top_titles
from db.feedback import feedback_by_model
from training.data import DatasetError, assign_splits, reshuffle_splits

STAT_COLUMNS = ("status", "provider", "language", "emotion", "occupation")


def export_scope_text(db, f: SampleFilter | None) -> str:
    """'Export will write 120 approved samples (Review filter: language en).' — said before the button."""
    approved = SampleFilter(**{**(f.model_dump() if f else {}), "statuses": ["approved"]})
    n = count(db, approved)
    scope = f"Review filter: {f.describe()}" if f and f.describe() != "all samples" else "every approved sample"
    if f and f.statuses and "approved" not in f.statuses:
        return (f"⚠️ *The Review filter shows only {', '.join(f.statuses)} samples; only approved ones are exported, "
                "so nothing would be written. Untick “Only samples matching the Review filter” or filter on approved.*")
    return f"*Export will write **{n:,} approved sample{'s' if n != 1 else ''}** ({scope}).*"


def build_curate_tools(services: Services, form) -> None:
    """The tabs beside Review; `form` is Review's FilterForm, which statistics and export follow."""
    _clusters_panel(services)
    _statistics_panel(services, form)
    _files_panel(services, form)


def _clusters_panel(services: Services) -> None:
    db = services.db
    with gr.Tab("Clusters", id="curate_clusters"):
        gr.Markdown("Near-duplicates (MinHash, Jaccard ≈ 0.9 on the answer) share a cluster. Compare the members, "
                    "keep one (approved), reject the rest — undoable from *Review → Undo last bulk action*.")
        with gr.Row():
            cluster_pick = gr.Dropdown([], label="Cluster (open ones, biggest first)", elem_id="cur_cluster_pick")
            cluster_refresh = gr.Button("Refresh clusters", elem_id="cur_cluster_refresh")
        members_view = gr.HTML(elem_id="cur_cluster_members")
        with gr.Row():
            keep_pick = gr.Radio([], label="Keep", elem_id="cur_keep_pick")
            keep_btn = gr.Button("Keep selected, reject the rest", variant="primary", elem_id="cur_keep")
        cluster_message = gr.Markdown(elem_id="cur_cluster_message")

    def refresh_clusters():
        found = clusters(db)
        choices = [(f"cluster {c.cluster_id} — {c.size} members, {c.open} not rejected", c.cluster_id) for c in found]
        msg = "" if found else "No open near-duplicate clusters."
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None), msg

    def show_cluster(cid):
        if cid in (None, ""):
            return cluster_html([]), gr.Radio(choices=[], value=None)
        members = cluster_members(db, int(cid))
        return cluster_html(members), gr.Radio(choices=[(f"#{m.id} ({m.status})", m.id) for m in members],
                                               value=members[0].id if members else None)

    def keep(cid, keep_id):
        if cid in (None, "") or keep_id in (None, ""):
            raise gr.Error("Pick a cluster and the member to keep.")
        try:
            action = keep_one(db, int(cid), int(keep_id))
        except CurationError as e:
            raise gr.Error(str(e))
        return f"Kept #{int(keep_id)}; {action.row_count - 1} other member(s) rejected (action #{action.id})."

    cluster_refresh.click(refresh_clusters, None, [cluster_pick, cluster_message], api_name="curate_clusters")
    cluster_pick.change(show_cluster, cluster_pick, [members_view, keep_pick], api_name="curate_cluster")
    keep_btn.click(keep, [cluster_pick, keep_pick], cluster_message, api_name="curate_keep").then(
        refresh_clusters, None, [cluster_pick, cluster_message])


def _statistics_panel(services: Services, form) -> None:
    db, filters = services.db, form.components
    with gr.Tab("Statistics", id="curate_stats") as stats_tab:
        stats_refresh = gr.Button("Refresh statistics (current filter)", elem_id="cur_stats_refresh")
        stats_summary = gr.Markdown(elem_id="cur_stats_summary")
        with gr.Row():
            plots = {c: gr.BarPlot(y_lim=[0, None], x=c, y="samples", title=f"samples by {c}", sort="-y", height=260,
                                   elem_id=f"cur_plot_{c}") for c in STAT_COLUMNS[:3]}
        with gr.Row():
            plots |= {c: gr.BarPlot(y_lim=[0, None], x=c, y="samples", title=f"samples by {c}", sort="-y", height=300,
                                    x_label_angle=-45, elem_id=f"cur_plot_{c}") for c in STAT_COLUMNS[3:]}
        rates = gr.Dataframe(headers=["provider", "model", "samples", "grounded", "rejected", "approved"],
                             interactive=False, label="Grounding and rejection rates per provider and model",
                             elem_id="cur_rates")
        titles = gr.BarPlot(y_lim=[0, None], x="title", y="samples", title="most recommended titles (collapse onto a few "
                            "bestsellers shows here)", sort="-y", x_label_angle=-45, height=360, elem_id="cur_titles")
        feedback = gr.Dataframe(lambda: feedback_rows(db), headers=FEEDBACK_COLUMNS, interactive=False,
                                label="Readers' 👍 / 👎 on Recommend answers, per model", elem_id="cur_feedback")

    def refresh_stats(*fvals):
        f = form.to_filter(*fvals)
        frames = [counts_frame(counts_by(db, c, f), c) for c in STAT_COLUMNS]
        total = int(frames[0]["samples"].sum()) if len(frames[0]) else 0
        return (f"**{total:,} samples** ({f.describe()})", *frames, rates_rows(rates_by_model(db, f)),
                counts_frame(top_titles(db, f, limit=25), "title"))

    stats_refresh.click(refresh_stats, filters, [stats_summary, *plots.values(), rates, titles],
                        api_name="curate_stats")
    # Opening the sub-tab draws the charts; the button redraws them after the filter changes.
    stats_tab.select(refresh_stats, filters, [stats_summary, *plots.values(), rates, titles], api_name=False)
    stats_tab.select(lambda: feedback_rows(db), None, feedback, api_name=False)


FEEDBACK_COLUMNS = ["model", "👍", "👎", "share 👍"]


def feedback_rows(db) -> list[list]:
    return [[model, up, down, f"{up / (up + down):.0%}"] for model, up, down in feedback_by_model(db)]


def _files_panel(services: Services, form) -> None:
    db, filters = services.db, form.components
    with gr.Tab("Split & files", id="curate_files"):
        gr.Markdown("**Train / eval split** — seeded by each sample's content hash, so the same seed gives the same "
                    "split on any machine. A sample keeps its split once assigned; *Redraw* only moves samples no "
                    "run has used (the eval samples of a run stay eval).")
        with gr.Row():
            eval_fraction = gr.Number(0.1, label="Eval fraction", elem_id="cur_eval_fraction")
            seed = gr.Number(42, precision=0, label="Seed", elem_id="cur_seed")
            split_language = gr.Dropdown(["", "en", "ko"], value="", label="Language (empty: all)")
            assign_btn = gr.Button("Assign new approved samples", elem_id="cur_assign")
            redraw_btn = gr.Button("Redraw unused samples", elem_id="cur_redraw")
        split_view = gr.Markdown(lambda: split_markdown(split_counts(db)), elem_id="cur_split_view")
        gr.Markdown("**Import** JSONL / JSON / CSV — alpaca (`instruction`, `input`, `output`) or chat "
                    "(`messages`). Every row is checked first: one bad row and nothing is imported.")
        with gr.Row():
            upload = gr.File(label="Sample file", file_types=[".jsonl", ".json", ".csv"], type="filepath",
                             elem_id="cur_import_file")
            import_label = gr.Textbox(label="Model label for these samples (default: file name)",
                                      elem_id="cur_import_label")
            import_btn = gr.Button("Import", variant="primary", elem_id="cur_import")
        import_report = gr.Markdown(elem_id="cur_import_report")
        gr.Markdown("**Export** approved samples, checked against the format before the file is written.")
        export_scope = gr.Markdown(lambda: export_scope_text(db, None), elem_id="cur_export_scope")
        with gr.Row():
            export_format = gr.Radio(list(FORMATS), value="alpaca", label="Format", elem_id="cur_export_format")
            export_filtered = gr.Checkbox(True, label="Only samples matching the Review filter",
                                          elem_id="cur_export_filtered")
            system_prompt = gr.Textbox(label="System message (openai format, optional)", elem_id="cur_system")
            export_btn = gr.Button("Export", variant="primary", elem_id="cur_export")
        export_file = gr.File(label="Download", interactive=False, elem_id="cur_export_file")
        export_message = gr.Markdown(elem_id="cur_export_message")

    def run_split(fraction, seed_value, language, redraw):
        try:
            fn = reshuffle_splits if redraw else assign_splits
            fn(db, eval_fraction=float(fraction or 0), seed=int(seed_value or 0), language=language or "")
        except DatasetError as e:
            raise gr.Error(str(e))
        return split_markdown(split_counts(db))

    def do_import(path, label):
        if not path:
            raise gr.Error("Choose a file to import first.")
        try:
            report = import_samples(db, Path(path).read_bytes(), Path(path).name, index=services.index(),
                                    model=(label or "").strip())
        except ExchangeError as e:
            lines = str(e).splitlines()
            return f"❌ **{lines[0]}**\n\n" + "\n".join(f"- {p}" for p in e.problems[:50])
        return f"✅ Imported {report.summary()}."

    def do_export(fmt, filtered, system, *fvals):
        f = form.to_filter(*fvals) if filtered else None
        out = Path(tempfile.mkdtemp(prefix="moodshelf-export-")) / f"moodshelf-{fmt}.jsonl"
        try:
            n = export_samples(db, out, fmt, f=f, system_prompt=(system or "").strip())
        except ExchangeError as e:
            return None, f"❌ {e}"
        return str(out), f"✅ Exported {n:,} approved samples as {fmt} JSONL."

    assign_btn.click(lambda *a: run_split(*a, False), [eval_fraction, seed, split_language], split_view,
                     api_name="curate_assign_splits")
    redraw_btn.click(lambda *a: run_split(*a, True), [eval_fraction, seed, split_language], split_view,
                     api_name="curate_redraw_splits")
    import_btn.click(do_import, [upload, import_label], import_report, api_name="curate_import")
    export_btn.click(do_export, [export_format, export_filtered, system_prompt, *filters],
                     [export_file, export_message], api_name="curate_export")

    def show_scope(filtered, *fvals):
        return export_scope_text(db, form.to_filter(*fvals) if filtered else None)

    # Which samples the button will write, said before it is pressed (the export follows the Review filter).
    for c in (export_filtered, *filters):
        c.change(show_scope, [export_filtered, *filters], export_scope, api_name=False)

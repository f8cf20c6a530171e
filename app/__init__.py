"""The moodshelf app: Gradio UI (one module per tab) and the `moodshelf` CLI."""

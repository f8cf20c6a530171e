"""What Compare and Arena keep of a reader's request. A request says how someone feels; what they write in
"Anything else" is theirs, so it is stored only when the operator turns that on (MOODSHELF_STORE_READER_TEXT=1,
see app/settings.py). The request fields, the answers and the votes are kept either way (the leaderboard and
the comparisons need them); `moodshelf purge --older-than 30d` removes old ones (db/retention.py).

    prompt, fields = stored_request(prompt, fields, keep_text=services.settings.store_reader_text)
"""
from __future__ import annotations

# How the prompt builders (datagen/prompts.py input_for) add the free text to the prompt.
NOTE_MARKERS = ("\nNote: ", "\n메모: ")
NOT_KEPT = "[not kept]"


def stored_request(prompt: str, fields: dict, *, keep_text: bool) -> tuple[str, dict]:
    """The prompt and request fields as stored: without the reader's free text unless `keep_text`."""
    text = (fields.get("free_text") or "").strip()
    if keep_text or not text:
        return prompt, fields
    for marker in NOTE_MARKERS:
        prompt = prompt.replace(marker + text, "")
    # Wherever else a prompt builder put it (retrieval inputs, other templates), it is not stored either.
    prompt = prompt.replace(text, NOT_KEPT)
    return prompt, {k: v for k, v in fields.items() if k != "free_text"}

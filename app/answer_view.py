"""How an answer is shown under its column: the catalog cards of its books and one line of figures
(time to first token, total time, tokens, estimated cost, books in the catalog). Shared by the Recommend,
Compare and Arena tabs."""
from __future__ import annotations

from app.services import BookCard
from datagen.safety import crisis_notice
from training.backends import Usage


def cards_markdown(cards: list[BookCard], language: str, *, truncated: bool = False) -> str:
    """The answer's books as catalog cards under one line that counts them (each book once)."""
    cut = f"\n\n{CUT_SHORT[language]}" if truncated else ""
    if not cards:
        return "*" + ("책 목록을 찾지 못했습니다." if language == "ko" else "No numbered book list found in this answer.") \
            + "*" + cut
    return f"**{catalog_count(cards, language)}**" + cut + "\n\n" + "\n".join(c.markdown(language) for c in cards)


def catalog_count(cards: list[BookCard], language: str) -> str:
    """'2 of 3 books are in the catalog' ("0 of 1 books" is not English: one book gets its own sentence)."""
    n, grounded = len(cards), sum(1 for c in cards if c.book)
    repeated = sum(1 for c in cards if c.times > 1)
    if language == "ko":
        line = f"{n}권 중 {grounded}권이 카탈로그에 있습니다"
        return line + (f" · {repeated}권은 여러 번 나왔습니다" if repeated else "")
    if n == 1:
        line = "The one book is in the catalog" if grounded else "The one book is not in the catalog"
    else:
        line = f"{grounded} of {n} books are in the catalog"
    return line + (f" · {repeated} named more than once" if repeated else "")


CONSTRAINED_LABEL = "Catalog-constrained decoding (local models name only catalog books)"
CONSTRAINED_INFO = ("On: while a local model writes a title it can only write a catalog book, each once, "
                    "N of them. Off: it writes freely (to see what the model does on its own). API models "
                    "are never constrained.")


def constrained_checkbox(prefix: str):
    """The switch for catalog-constrained decoding (training/constrained.py), on by default."""
    import gradio as gr

    return gr.Checkbox(True, label=CONSTRAINED_LABEL, info=CONSTRAINED_INFO, elem_id=f"{prefix}constrained")


def cost_text(cost_usd: float | None) -> str:
    if cost_usd is None:
        return "cost unknown"
    if cost_usd == 0:
        return "$0 (local)"
    return f"~${cost_usd:.5f}"


CUT_SHORT = {"en": "✂️ **cut short at the token limit** — the answer is incomplete",
             "ko": "✂️ **토큰 한도에서 잘렸습니다** — 답변이 완전하지 않습니다"}


def stats_line(usage: Usage, cards: list[BookCard], language: str = "en") -> str:
    grounded = sum(1 for c in cards if c.book)
    ttft = f"{usage.ttft_s:.2f} s" if usage.ttft_s is not None else "-"
    line = (f"first token {ttft} · total {usage.total_s:.1f} s · {usage.completion_tokens} tokens · "
            f"{cost_text(usage.cost_usd)} · **{grounded}/{len(cards)} books in catalog**")
    return line + (f" · {CUT_SHORT[language]}" if usage.truncated else "")


def waiting_line(backend, waited_s: float, language: str = "en") -> str:
    """What a column shows before its first token. A local answer says where it is in the shared model's queue
    ("waiting: 2 ahead · about 40 s") or that it is being written; an API answer says how long it has waited
    and when it will give up."""
    stats = backend.queue_stats()
    if stats is not None:
        if stats.writing:
            return writing_line(backend, language)
        if not stats.ahead_now:  # its turn: the model loads (a merged adapter: seconds) or the prompt prefills
            return f"*시작하는 중… {waited_s:.0f}초*" if language == "ko" else f"*starting… {waited_s:.0f} s*"
        estimate = _estimate(stats.wait_s, stats.estimate_is_bound, language)
        if language == "ko":
            return f"*대기 중: 앞에 {stats.ahead_now}개{estimate} · {waited_s:.0f}초 기다림*"
        return f"*waiting: {stats.ahead_now} ahead{estimate} · waited {waited_s:.0f} s*"
    limit = getattr(backend, "first_token_timeout_s", None)
    if language == "ko":
        return (f"*첫 토큰을 기다리는 중… {waited_s:.0f}초" + (f" ({limit:g}초 후 중단)*" if limit else "*"))
    return f"*waiting for the first token… {waited_s:.0f} s" + (f" (gives up after {limit:g} s)*" if limit else "*")


def writing_line(backend, language: str = "en") -> str:
    """What a column shows while its answer streams: "writing…", with the time left for a local answer."""
    stats = backend.queue_stats()
    left = _estimate(stats.left_s, stats.estimate_is_bound, language, left=True, sep=" ") if stats is not None else ""
    return f"*쓰는 중…{left}*" if language == "ko" else f"*writing…{left}*"


def progress_line(backend, has_text: bool, waited_s: float, language: str = "en") -> str:
    """The line under an answer on each tick: "writing…" once its text has begun, else where it waits."""
    return writing_line(backend, language) if has_text else waiting_line(backend, waited_s, language)


def _estimate(seconds: float | None, bound: bool, language: str, *, left: bool = False, sep: str = " · ") -> str:
    """ · about 40 s" (" · at most 40 s" while no answer has finished to measure lengths by); "" without a figure."""
    if seconds is None:
        return ""
    if language == "ko":
        amount = f"{seconds / 60:.0f}분" if seconds >= 90 else f"{max(1, round(seconds))}초"
        return f"{sep}{'최대' if bound else '약'} {amount}" + (" 남음" if left else "")
    amount = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(1, round(seconds))} s"
    return f"{sep}{'at most' if bound else 'about'} {amount}" + (" left" if left else "")


def result_record(label: str, text: str, usage: Usage | None, cards: list[BookCard], error: str | None) -> dict:
    """One column as stored in comparisons.results (no key can be in it: errors are redacted upstream)."""
    u = usage or Usage()
    return {"backend": label, "output": text, "ttft_s": u.ttft_s, "total_s": u.total_s,
            "prompt_tokens": u.prompt_tokens, "tokens": u.completion_tokens, "cost_usd": u.cost_usd,
            "grounded": sum(1 for c in cards if c.book), "books": len(cards),
            "titles": [c.title for c in cards], "error": error, "truncated": u.truncated}


def crisis_markdown(fields: dict, language: str) -> str:
    """The caring message with the crisis line, shown above the answers when the request signals self-harm or
    suicidal thoughts (datagen/safety.py); "" otherwise."""
    notice = crisis_notice(fields, language)
    return f"> 💛 **{notice}**" if notice else ""

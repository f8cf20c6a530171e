"""Catalog-constrained decoding and title grounding at 100,000 books, each next to a baseline in the same run:

1. trie build: our array trie (training/title_trie.py) vs a dict-per-node trie of the same token sequences;
2. per-token cost: SmolLM2-135M greedy generation with and without the processor (same prompt), and the
   processor's own time per call (inside generation, and replayed alone for 1 and 8 rows);
3. grounding: CatalogIndex.match with the rapidfuzz prefilter vs the old difflib loop over every entry;
4. what constrained decoding does to the base model's answers on the built-in catalog: free, constrained
   opening with "1." (the default), and constrained letting the model open as it likes.

    python bench/bench_constrained.py                        # ~10 minutes on 2 shared CPU cores
    python bench/bench_constrained.py --books 20000 --max-new-tokens 64 --skip-answers
    python bench/bench_constrained.py | tee bench/results/constrained_cpu.txt



"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EN_ADJ = ("Silent Quiet Hidden Last Lost Golden Broken Gentle Wild Distant Secret Burning Little Hollow Bright "
          "Forgotten Endless Restless Northern Crimson Velvet Paper Glass Iron Winter Summer Midnight Morning "
          "Invisible Unfinished Borrowed Wandering Sleeping Careful Honest Patient Brave Tender Salt Stone").split()
EN_NOUN = ("River Garden Letters House Sea Light Night Orchard Harbor Island Kingdom Lantern Library Mountain "
           "Promise Season Shadow Station Storm Summer Tide Voyage Window Year Bridge Clock Compass Daughter "
           "Festival Forest Hours Journey Keeper Map Mirror Music Ocean Road Silence Sister Sky Song Stars Street "
           "Table Thread Valley Winter Wolves").split()
EN_FIRST = ("James Mary Olivia Henry Clara Daniel Grace Samuel Alice Thomas Ruth Peter Nora Arthur Helen Lucas "
            "Irene Walter Esther Leo Margaret Oscar Vera Felix Hazel Isaac Maya Julian Iris Simon Ada Victor "
            "Elena Hugo Lydia Ethan Rosa Adrian Naomi Owen").split()
EN_LAST = ("Clear Hartley Morgan Ellis Whitfield Brennan Calloway Sinclair Ashford Mercer Thornton Lowell "
           "Pemberton Quinn Holloway Vance Ainsley Beckett Carver Delaney Everett Fairchild Garland Hale Ingram "
           "Jarvis Kendall Langley Marlow Northcott Osborne Prescott Radcliffe Sutton Tate Underwood Waverly "
           "Yardley Zeller Abbott").split()
KO_ADJ = ("조용한 푸른 따뜻한 잃어버린 오래된 작은 눈부신 낯선 느린 다정한 고요한 깊은 하얀 붉은 투명한 "
          "외로운 빛나는 흔들리는 서툰 아득한 마지막 첫 보통의 어느 먼 가까운 새벽의 한밤의 여름의 겨울의").split()
KO_NOUN = ("바다 정원 편지 기억 계절 골목 서점 기차 섬 우주 마음 하루 숲 도서관 등대 식탁 창문 노래 "
           "약속 여행 고양이 우체국 빵집 시간 이름 그림자 별 꽃 강 언덕 방 집 사람 친구 이웃 밤 아침 "
           "바람 비 눈 구름 달 해 물고기 나무 길 다리 시계 지도 사진").split()
KO_SURNAME = "김 이 박 최 정 강 조 윤 장 임 한 오 서 신 권 황 안 송 류 홍".split()
KO_GIVEN = ("민준 서연 지훈 하은 도윤 수아 예준 지우 시우 서윤 주원 하윤 지호 지민 현우 채원 건우 "
            "다은 우진 소율 선우 예린 연우 윤서 정우 지아 승현 은서 태윤 가은 호연 미예 영하 은희 "
            "혜진 상훈 경민 수진 재희 한결").split()


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """n unique (title, author) rows, half Korean, half English, made of real-looking words."""
    from datagen.grounding import book_key

    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        if len(rows) % 2:
            adj, noun, noun2 = rng.choice(EN_ADJ), rng.choice(EN_NOUN), rng.choice(EN_NOUN)
            title = rng.choice([f"The {adj} {noun}", f"{noun} of the {adj} {noun2}", f"A {noun} for {noun2}s",
                                f"{adj} {noun}s", f"The {noun} - {adj} {noun2}", f"{adj} {noun}: A Novel"])
            author, language = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}", "en"
        else:
            adj, noun, noun2 = rng.choice(KO_ADJ), rng.choice(KO_NOUN), rng.choice(KO_NOUN)
            title = rng.choice([f"{adj} {noun}", f"{noun}의 {noun2}", f"{adj} {noun}에서 보낸 {rng.randint(2, 99)}일",
                                f"{noun}와 {noun2}", f"{adj} {noun}에게", f"{noun}, {adj} {noun2}"])
            author, language = f"{rng.choice(KO_SURNAME)}{rng.choice(KO_GIVEN)}", "ko"
        key = book_key(title, author)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"title": title, "author": author, "language": language,
                     "moods": rng.choice(["comfort", "calm;hope", "courage", "insight;empathy"])})
    return rows


def import_catalog(rows: list[dict], tmp: Path):
    import csv

    from datagen.catalog import import_catalog_file
    from db.engine import open_db

    path = tmp / "synthetic_catalog.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["title", "author", "language", "moods"])
        writer.writeheader()
        writer.writerows(rows)
    db = open_db(f"sqlite:///{tmp / 'bench.db'}")
    t0 = time.perf_counter()
    report = import_catalog_file(db, path)
    return db, report, time.perf_counter() - t0


def dict_trie(sequences) -> dict:
    """The baseline: one dict per node, entry counts on each node."""
    root: dict = {}
    for i, seq in enumerate(sequences):
        node = root
        for t in seq:
            node = node.setdefault(t, {})
        node[-1] = i
    return root


def timed(build) -> tuple[float, float]:
    """(seconds to build, MB the built structure keeps), the memory from a second, traced build."""
    import tracemalloc

    gc.collect()
    t0 = time.perf_counter()
    build()
    seconds = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    kept = build()
    mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    del kept
    gc.collect()
    return seconds, mb


def stats_us(samples: list[float]) -> str:
    s = sorted(samples)
    p = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1e6  # noqa: E731
    return f"mean {statistics.fmean(s) * 1e6:7.1f}  p50 {p(0.5):7.1f}  p95 {p(0.95):7.1f}  max {s[-1] * 1e6:8.1f} µs"


def old_difflib_match(index, title: str, author: str, threshold: float = 0.85):
    """CatalogIndex.match as it was: the fuzzy fallback scores every entry with difflib."""
    from datagen.grounding import _author_similarity, normalize_author, normalize_title

    tn, an = normalize_title(title), normalize_author(author)
    exact = index.by_key.get((tn, an))
    if exact:
        return exact.book_id
    best, best_score = None, 0.0
    for e in index.by_title.get(tn, []):
        s = 0.5 + 0.5 * _author_similarity(an, e.author_norm)
        if s > best_score:
            best, best_score = e, s
    if best_score < threshold:
        for e in index.entries:
            ts = SequenceMatcher(None, tn, e.title_norm).ratio()
            if ts < 0.8:
                continue
            s = 0.6 * ts + 0.4 * _author_similarity(an, e.author_norm)
            if s > best_score:
                best, best_score = e, s
    return best.book_id if best is not None and best_score >= threshold else None


def typo(rng: random.Random, s: str) -> str:
    i = rng.randrange(1, len(s))
    return s[:i] + s[i + 1:] if rng.random() < 0.5 else s[:i] + s[i] + s[i:]


PROMPTS = {
    "en": "Recommend 3 books for an anxious office worker looking for comfort and calm. For each book, explain "
          "why you recommend it and its emotional effect.\n\nEmotion: anxious\nOccupation: office worker\n"
          "Effect: comfort, calm\nSituation: before sleep\nFocus: light reading",
    "ko": "불안한 직장인에게 위로와 안정을 주는 책 3권을 추천해줘. 각 책마다 추천 이유와 감정적 효과를 설명해줘.\n\n"
          "감정: 불안함\n직업: 직장인\n효과: 위로, 안정\n상황: 잠들기 전 휴식\n집중도: 가볍게 읽을 수 있음",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--books", type=int, default=100_000)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared: keep it small)")
    ap.add_argument("--lookups", type=int, default=200, help="grounding lookups with rapidfuzz")
    ap.add_argument("--old-lookups", type=int, default=3, help="lookups with the old difflib loop (slow)")
    ap.add_argument("--repeats", type=int, default=5, help="replays of the processor alone (fastest per step)")
    ap.add_argument("--skip-answers", action="store_true", help="skip section 4 (the base model's answers)")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from datagen.catalog import catalog_index
    from datagen.validation import parse_books
    from training.base_model import load_tokenizer, resolve_base_model, stop_token_ids
    from training.constrained import ConstrainedLogitsProcessor, RowConstraint, TitleTrie, catalog_entries
    from training.token_text import token_vocabulary

    torch.set_num_threads(args.threads)
    print(f"moodshelf constrained-decoding bench — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"torch threads {args.threads}, load average {os.getloadavg()[0]:.1f} at start")
    print("(a machine shared with other work: timings are noisy; compare the columns, which ran side by side)\n")

    tmp = Path(tempfile.mkdtemp(prefix="moodshelf-bench-constrained-"))
    db, report, import_s = import_catalog(synthetic_rows(args.books), tmp)
    print(f"catalog: {report.inserted:,} synthetic books imported through the CSV import in {import_s:.1f} s")
    model_path = resolve_base_model("smollm2-135m")
    tok = load_tokenizer(model_path)
    eos = stop_token_ids(tok)

    # -- 1. trie build --------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    token_vocabulary(tok)
    vocab_s = time.perf_counter() - t0
    entries = {lang: catalog_entries(db, lang) for lang in ("en", "ko")}
    everything = entries["en"] + entries["ko"]
    tries, build_s = {}, {}
    for name, ents in (("all", everything), ("en", entries["en"]), ("ko", entries["ko"])):
        gc.collect()
        t0 = time.perf_counter()
        tries[name] = TitleTrie.build(tok, ents)
        build_s[name] = time.perf_counter() - t0
    trie = tries["all"]
    seqs = [trie.tokens(i) for i in range(len(trie))]
    ids = [int(b) for b in trie.book_ids]
    ours = lambda: TitleTrie(trie.vocab, trie.lines, ids, seqs)  # noqa: E731 - the node build alone
    nodes_s, ours_mb = timed(ours)
    dict_s, dict_mb = timed(lambda: dict_trie(seqs))
    tokens_per_entry = {lang: statistics.fmean(len(tries[lang].tokens(i)) for i in range(len(tries[lang])))
                        for lang in ("en", "ko")}
    candidates = [int(b) for b in tries["ko"].book_ids[:: max(1, len(tries["ko"]) // 8)][:8]]
    t0 = time.perf_counter()
    for _ in range(100):
        tries["ko"].restrict(candidates)
    restrict_us = (time.perf_counter() - t0) / 100 * 1e6

    print("\n1. title trie, SmolLM2 tokenizer")
    print(f"   per-token texts and masks (once per tokenizer)  {vocab_s:6.2f} s")
    print(f"   tokens per entry: en {tokens_per_entry['en']:.1f}, ko {tokens_per_entry['ko']:.1f}; "
          f"{trie.node_total:,} nodes for {len(trie):,} entries")
    print(f"   {'':46}{'ours (arrays)':>16}{'baseline (dict/node)':>22}")
    print(f"   {'build, tokenize + check + nodes, all entries':46}{build_s['all']:>14.2f} s{'':>22}")
    print(f"   {'  of which nodes from token sequences':46}{nodes_s:>14.2f} s{dict_s:>20.2f} s")
    print(f"   {'  memory it keeps (tracemalloc)':46}{ours_mb:>13.0f} MB{dict_mb:>19.0f} MB")
    print(f"   {'build, en only / ko only':46}{build_s['en']:>7.2f} / {build_s['ko']:.2f} s")
    print(f"   {'restrict to 8 candidates':46}{restrict_us:>13.0f} µs")

    # -- 2. per-token cost in a real generation ------------------------------------------------------------------
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()

    class Timed(ConstrainedLogitsProcessor):
        def __init__(self, rows, width):
            super().__init__(rows, width)
            self.calls: list[float] = []

        def __call__(self, input_ids, scores):
            t = time.perf_counter()
            out = super().__call__(input_ids, scores)
            self.calls.append(time.perf_counter() - t)
            return out

    def run(language: str, constrained: bool, force_list_start: bool = True, max_new_tokens: int | None = None):
        inputs = tok.apply_chat_template([{"role": "user", "content": PROMPTS[language]}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)
        width = inputs["input_ids"].shape[1]
        row = RowConstraint(tries[language], tok, n_books=3, eos_token_id=eos,
                            force_list_start=force_list_start) if constrained else None
        processor = Timed([row] if row else [None], width)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens or args.max_new_tokens, do_sample=False,
                                 eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id, logits_processor=[processor] if row else [])
        seconds = time.perf_counter() - t0
        processor.finish(out)
        generated = out[0, width:].tolist()
        return dict(tokens=len(generated), seconds=seconds, calls=processor.calls, row=row, ids=generated,
                    text=tok.decode(generated, skip_special_tokens=True))

    run("en", True, max_new_tokens=8)  # warm-up: first-call allocations (and the processor's cached masks)
    runs = {}
    for language in ("en", "ko"):
        runs[(language, "free")] = run(language, False)
        runs[(language, "constrained")] = run(language, True)
    print(f"\n2. SmolLM2-135M fp32, greedy, up to {args.max_new_tokens} new tokens, one request "
          f"(trie: the request language's {len(tries['en']):,} / {len(tries['ko']):,} books)")
    print(f"   {'':34}{'tokens':>7}{'seconds':>9}{'ms/token':>10}{'processor ms/call: mean, p50':>30}")
    for (language, mode), r in runs.items():
        proc = (f"{statistics.fmean(r['calls']) * 1e3:.3f}, {statistics.median(r['calls']) * 1e3:.3f}"
                if r["calls"] else "-")
        label = f"{language} {'baseline: no processor' if mode == 'free' else 'constrained'}"
        print(f"   {label:34}{r['tokens']:>7}{r['seconds']:>9.2f}{r['seconds'] / r['tokens'] * 1e3:>10.1f}{proc:>30}")
    # The processor alone, replaying the constrained answers' tokens (scores of zeros: the masking work is the
    # same). Each step's time is the fastest of --repeats replays: a shared machine preempts a process for
    # milliseconds at a time, which would otherwise swamp tens of microseconds of work.
    print(f"   processor alone, replaying those answers, per step (fastest of {args.repeats} replays):")
    for language in ("en", "ko"):
        ids = runs[(language, "constrained")]["ids"]
        for n_rows in (1, 8):
            best = [float("inf")] * len(ids)
            scores = torch.zeros(n_rows, model.config.vocab_size)
            for _ in range(args.repeats):
                rows = [RowConstraint(tries[language], tok, n_books=3, eos_token_id=eos) for _ in range(n_rows)]
                processor = ConstrainedLogitsProcessor(rows, 0)
                for step in range(len(ids)):
                    input_ids = torch.tensor([ids[:step]] * n_rows, dtype=torch.long).reshape(n_rows, step)
                    scores.numpy()[:] = 0.0  # not a torch op: its idle intra-op threads would spin into the timing
                    t = time.perf_counter()
                    processor(input_ids, scores)
                    best[step] = min(best[step], time.perf_counter() - t)
            print(f"     {language}, {n_rows} row{'s' if n_rows > 1 else ' '}: {stats_us(best)}")

    # -- 3. grounding --------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    index = catalog_index(db)
    index_s = time.perf_counter() - t0
    rng = random.Random(1)
    picks = rng.sample(index.entries, args.lookups)
    queries = [(typo(rng, e.title), e.author) for e in picks]  # a typo: the exact lookup misses, fuzzy finds it
    times, found = [], 0
    for title, author in queries:
        t = time.perf_counter()
        m = index.match(title, author)
        times.append(time.perf_counter() - t)
        found += m.grounded
    old_times, agree = [], 0
    for title, author in queries[: args.old_lookups]:
        t = time.perf_counter()
        old = old_difflib_match(index, title, author)
        old_times.append(time.perf_counter() - t)
        agree += old == index.match(title, author).book_id
    new_ms, old_ms = statistics.fmean(times) * 1e3, statistics.fmean(old_times) * 1e3
    print(f"\n3. grounding a title with a typo against {len(index.entries):,} books "
          f"(CatalogIndex built in {index_s:.1f} s)")
    print(f"   {'rapidfuzz prefilter + difflib on survivors':46}{new_ms:>10.2f} ms/lookup  "
          f"({args.lookups} lookups, p95 {sorted(times)[int(0.95 * len(times))] * 1e3:.2f} ms, {found} grounded)")
    print(f"   {'baseline: difflib over every entry':46}{old_ms:>10.0f} ms/lookup  "
          f"({args.old_lookups} lookups, same book id {agree}/{args.old_lookups})")
    print(f"   {'speed-up':46}{old_ms / new_ms:>9.0f}x")

    # -- 4. what it does to the base model's answers, on the real built-in catalog --------------------------------
    if args.skip_answers:
        return
    from datagen.catalog import load_builtin_catalog
    from db.engine import open_db

    shipped = open_db(f"sqlite:///{tmp / 'builtin.db'}")
    load_builtin_catalog(shipped)
    shipped_index = catalog_index(shipped)
    tries.update({lang: TitleTrie.build(tok, catalog_entries(shipped, lang)) for lang in ("en", "ko")})
    print(f"\n4. base model answers (greedy, up to {args.max_new_tokens} tokens) on the built-in catalog "
          f"({len(tries['en'])} en / {len(tries['ko'])} ko books): free vs constrained")
    for language in ("en", "ko"):
        answers = {"free (the run of section 2)": runs[(language, "free")],
                   "constrained, opens with '1.' (default)": run(language, True),
                   "constrained, opens as it likes": run(language, True, force_list_start=False)}
        for mode, r in answers.items():
            books = parse_books(r["text"], language)
            grounded = sum(shipped_index.match(b.title, b.author).grounded for b in books)
            row = r["row"]
            extra = f", named {len(row.named_books)}, cut short {row.cut_short}" if row else ""
            print(f"\n   --- {language}, {mode}: {len(books)} books parsed, {grounded} in the catalog{extra}, "
                  f"{r['tokens']} tokens")
            print("   " + r["text"].strip().replace("\n", "\n   "))

if __name__ == "__main__":
    main()

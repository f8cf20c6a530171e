"""Arena leaderboard: win rates and Bradley–Terry scores with bootstrap confidence intervals, from votes.

    battles = [Battle("run:3 (tiny)", "base", "a"), Battle("openai:gpt-4.1-mini", "run:3 (tiny)", "tie")]
    for row in leaderboard(battles, n_bootstrap=200, seed=0):
        print(row.backend, row.win_rate, row.score, row.ci_low, row.ci_high)

Pure functions, no I/O. Outcomes: "a", "b", "tie", "both_bad". A tie counts half a win for each side
(the usual Bradley–Terry treatment, as in LMSYS' arena); "both bad" says nothing about which is better and
is left out of the fit and the win rate, but counted per backend.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j). Fitted with Hunter's MM algorithm (2004, "MM algorithms for
generalized Bradley-Terry models"), p_i <- W_i / sum_j n_ij / (p_i + p_j), plus a weak prior (one virtual tie
against every other backend) so a backend that won or lost every game keeps a finite score. Scores are shown
on the Elo scale: 400·log10(p_i) shifted so the mean is 1000.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

OUTCOMES = ("a", "b", "tie", "both_bad")


@dataclass(frozen=True)
class Battle:
    a: str
    b: str
    outcome: str  # one of OUTCOMES


@dataclass
class Standing:
    backend: str
    games: int          # votes that compared it (both_bad included)
    wins: float         # ties count 1/2
    both_bad: int
    win_rate: float | None   # wins / decisive-or-tie games; None with none
    score: float        # Bradley–Terry on the Elo scale
    ci_low: float
    ci_high: float


def _wins_matrix(battles: list[Battle], names: list[str]) -> list[list[float]]:
    """w[i][j]: how often i beat j (ties: 1/2 each)."""
    idx = {n: k for k, n in enumerate(names)}
    w = [[0.0] * len(names) for _ in names]
    for bt in battles:
        if bt.outcome not in OUTCOMES:
            raise ValueError(f"Unknown outcome '{bt.outcome}': expected one of {', '.join(OUTCOMES)}.")
        i, j = idx[bt.a], idx[bt.b]
        if bt.outcome == "a":
            w[i][j] += 1
        elif bt.outcome == "b":
            w[j][i] += 1
        elif bt.outcome == "tie":
            w[i][j] += 0.5
            w[j][i] += 0.5
    return w


def bradley_terry(battles: list[Battle], names: list[str] | None = None, *, prior: float = 1.0,
                  iters: int = 2000, tol: float = 1e-10) -> dict[str, float]:
    """Strengths p (geometric mean 1) by MM. `prior` virtual games (half won) against each other backend."""
    names = names or sorted({n for b in battles for n in (b.a, b.b)})
    n = len(names)
    if n == 0:
        return {}
    w = _wins_matrix(battles, names)
    for i in range(n):
        for j in range(n):
            if i != j:
                w[i][j] += prior / 2
    games = [[w[i][j] + w[j][i] for j in range(n)] for i in range(n)]
    total_wins = [sum(w[i]) for i in range(n)]
    p = [1.0] * n
    for _ in range(iters):
        new = []
        for i in range(n):
            denom = sum(games[i][j] / (p[i] + p[j]) for j in range(n) if j != i and games[i][j])
            new.append(total_wins[i] / denom if denom else p[i])
        g = math.exp(sum(math.log(x) for x in new) / n)  # fix the scale: geometric mean 1
        new = [x / g for x in new]
        done = max(abs(a - b) for a, b in zip(new, p)) < tol
        p = new
        if done:
            break
    return dict(zip(names, p))


def elo_scale(strengths: dict[str, float]) -> dict[str, float]:
    if not strengths:
        return {}
    elo = {k: 400 * math.log10(v) for k, v in strengths.items()}
    mean = sum(elo.values()) / len(elo)
    return {k: v - mean + 1000 for k, v in elo.items()}


def leaderboard(battles: list[Battle], *, n_bootstrap: int = 200, seed: int = 0,
                confidence: float = 0.95) -> list[Standing]:
    """One Standing per backend, best score first. The interval is the percentile bootstrap over votes
    (resample the battles with replacement, refit)."""
    names = sorted({n for b in battles for n in (b.a, b.b)})
    if not names:
        return []
    point = elo_scale(bradley_terry(battles, names))
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(n_bootstrap):
        resample = [battles[rng.randrange(len(battles))] for _ in battles]
        for k, v in elo_scale(bradley_terry(resample, names)).items():
            samples[k].append(v)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    rows = []
    for name in names:
        mine = [b for b in battles if name in (b.a, b.b)]
        decided = [b for b in mine if b.outcome != "both_bad"]
        wins = sum(1.0 if (b.outcome == "a" and b.a == name) or (b.outcome == "b" and b.b == name) else
                   0.5 if b.outcome == "tie" else 0.0 for b in decided)
        s = sorted(samples[name])
        low, high = (_quantile(s, lo_q), _quantile(s, hi_q)) if s else (point[name], point[name])
        rows.append(Standing(backend=name, games=len(mine), wins=wins,
                             both_bad=sum(1 for b in mine if b.outcome == "both_bad"),
                             win_rate=wins / len(decided) if decided else None, score=point[name],
                             ci_low=low, ci_high=high))
    return sorted(rows, key=lambda r: -r.score)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)

"""Leaderboard metrics on fixed votes with known answers: Bradley–Terry recovers known strengths, win
rates count ties as half and ignore "both bad", bootstrap intervals contain the point and shrink with data."""
import math

import pytest

from training.leaderboard import Battle, bradley_terry, elo_scale, leaderboard


def battles(a, b, a_wins=0, b_wins=0, ties=0, both_bad=0):
    return ([Battle(a, b, "a")] * a_wins + [Battle(a, b, "b")] * b_wins + [Battle(a, b, "tie")] * ties
            + [Battle(a, b, "both_bad")] * both_bad)


def test_bradley_terry_recovers_strengths_from_exactly_consistent_counts():
    # With p = 4 : 2 : 1, these counts satisfy the likelihood equations exactly (W_i = sum n_ij p_i/(p_i+p_j)).
    votes = battles("A", "B", 2, 1) + battles("B", "C", 2, 1) + battles("A", "C", 4, 1)
    p = bradley_terry(votes, prior=0)
    assert p["A"] / p["B"] == pytest.approx(2, rel=1e-6) and p["B"] / p["C"] == pytest.approx(2, rel=1e-6)
    assert math.prod(p.values()) == pytest.approx(1)  # the scale is fixed: geometric mean 1


def test_prior_keeps_an_unbeaten_backend_finite_with_the_closed_form_two_player_answer():
    p = bradley_terry(battles("A", "B", 3, 1))  # prior: one virtual tie -> (3 + 0.5) / (1 + 0.5)
    assert p["A"] / p["B"] == pytest.approx(3.5 / 1.5, rel=1e-6)
    elo = elo_scale(p)
    assert elo["A"] - elo["B"] == pytest.approx(400 * math.log10(7 / 3), rel=1e-6)  # 147.2
    assert (elo["A"] + elo["B"]) / 2 == pytest.approx(1000)
    unbeaten = bradley_terry(battles("A", "B", 5, 0))
    assert math.isfinite(unbeaten["A"]) and unbeaten["A"] / unbeaten["B"] == pytest.approx(11, rel=1e-6)


def test_win_rate_counts_ties_as_half_and_ignores_both_bad():
    rows = {r.backend: r for r in leaderboard(battles("A", "B", 2, 1, ties=1, both_bad=3), n_bootstrap=20)}
    assert rows["A"].win_rate == pytest.approx(2.5 / 4) and rows["B"].win_rate == pytest.approx(1.5 / 4)
    assert rows["A"].games == 7 and rows["A"].both_bad == 3 and rows["A"].wins == 2.5


def test_order_of_columns_does_not_matter():
    one = battles("A", "B", 3, 1)
    swapped = [Battle(b.b, b.a, {"a": "b", "b": "a"}.get(b.outcome, b.outcome)) for b in one]
    assert bradley_terry(one) == pytest.approx(bradley_terry(swapped))


def test_bootstrap_interval_contains_the_score_and_narrows_with_more_votes():
    small = {r.backend: r for r in leaderboard(battles("A", "B", 6, 4), n_bootstrap=300, seed=1)}
    big = {r.backend: r for r in leaderboard(battles("A", "B", 60, 40), n_bootstrap=300, seed=1)}
    for rows in (small, big):
        for r in rows.values():
            assert r.ci_low <= r.score <= r.ci_high
    assert (big["A"].ci_high - big["A"].ci_low) < (small["A"].ci_high - small["A"].ci_low) / 2
    assert [r.backend for r in leaderboard(battles("A", "B", 60, 40), n_bootstrap=10)] == ["A", "B"]
    # deterministic for a seed
    assert leaderboard(battles("A", "B", 6, 4), n_bootstrap=50, seed=3) == leaderboard(
        battles("A", "B", 6, 4), n_bootstrap=50, seed=3)


def test_empty_and_unknown_outcomes():
    assert leaderboard([]) == []
    with pytest.raises(ValueError, match="Unknown outcome"):
        bradley_terry([Battle("A", "B", "draw")])

"""Issue 18 items 3, 4, 7: per-request assignment, --stress held-out, the per-task default floor and its flags,
paper mode's STATIC CI, the replay's _window semantics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sprout_core import assign, profiles
from sprout_core import simulate as S
from sprout_core.errors import InputError
from sprout_core.profiles import Profile
from tests.test_promise import _ci_year, _profile, _table, _trace


def _prof_with_table(per_task=600, seed=0) -> Profile:
    base = _profile()
    return Profile(**{**base.__dict__, "prompts": _table(base, per_task=per_task, seed=seed)})


def test_replay_levels_are_assign_hour_draws():
    # request k of hour h is served at pick_level(x, u_k), u = level_stream(seed, hour): counted by segments,
    # the replay's credited requests equal a one-by-one count over the same draws
    prof = _prof_with_table()
    ctx = S.build_context(prof, _trace(_ci_year()), S.SimConfig(start_hour=50, hours=30, seed=7))
    r = ctx.requests
    rng = np.random.default_rng(0)
    x = rng.dirichlet([1, 1, 1], size=ctx.H)
    x[::3, 1] = 0.0
    q, q_task = ctx.realised(x)
    for h in range(ctx.H):
        a, b = r.req_offsets[h], r.req_offsets[h + 1]
        assert b - a == ctx.n_true_task[h].sum()                          # every request of the hour
        u = assign.level_stream(7, 50 + h).random(b - a)
        assert np.allclose(np.sort(r.u_r[a:b]), np.sort(u))            # the hour's own stream, every draw used
        lv = np.array([assign.pick_level(x[h], uk) for uk in r.u_r[a:b]])
        w = r.winner_r[a:b]
        assert q[h] == pytest.approx(np.sum(lv == w) / np.sum(w == 0))
        if h % 3 == 0:
            assert not np.any(lv == 1)                                   # a zero share is never served
        for t in range(2):
            m = r.task_r[a:b] == t
            if np.sum(w[m] == 0):
                assert q_task[h, t] == pytest.approx(np.sum(lv[m] == w[m]) / np.sum(w[m] == 0))


def test_per_request_quality_scatters_more_than_the_expectation():
    prof = _prof_with_table()
    tr = _trace(_ci_year())
    cfg = S.SimConfig(start_hour=0, hours=400, seed=1, per_task_floor=False)
    x = np.tile([0.5, 0.3, 0.2], (400, 1))
    ctx = S.build_context(prof, tr, cfg)
    q_req = ctx.realised(x)[0]
    q_exp = (ctx.q_true * x).sum(axis=1) / ctx.q_true[:, 0]   # the same requests credited the expectation Σ x·q
    assert abs(np.nanmean(q_req) - np.nanmean(q_exp)) < 0.02
    assert np.nanstd(q_req) > np.nanstd(q_exp)


def test_held_out_stress_splits_each_tasks_prompts_in_halves():
    from sprout_core.workload import split_pools

    prof = _prof_with_table()
    u0, e0 = split_pools(prof, (3, 0))
    u1, e1 = split_pools(prof, (3, 1))
    for t in range(2):
        assert not set(u0[t]) & set(e0[t])                                # disjoint halves
        assert set(u0[t]) | set(e0[t]) == set(np.flatnonzero(prof.prompts.task == t))
        assert np.array_equal(u0[t], e1[t]) and np.array_equal(e0[t], u1[t])   # seed % 2 swaps them
    assert not np.array_equal(split_pools(prof, (4, 0))[0][0], u0[0])     # seed // 2 picks the partition
    ctx = S.build_context(prof, _trace(_ci_year()), S.SimConfig(start_hour=0, hours=50, seed=6, stress="held-out"))
    users = set(split_pools(prof, (3, 0))[0][0].tolist()) | set(split_pools(prof, (3, 0))[0][1].tolist())
    assert set(ctx.requests.rows.tolist()) <= users                         # the users send their half only
    assert ctx.pool_n.tolist() == [300.0, 300.0]                            # the evaluator judges the other half


def test_stress_needs_a_per_prompt_table_and_paper_mode_refuses_it():
    with pytest.raises(InputError, match="per-prompt"):
        S.build_context(_profile(), _trace(_ci_year()), S.SimConfig(hours=10, stress="held-out"))
    with pytest.raises(InputError, match="stress"):
        S.SimConfig.paper_faithful(stress="held-out")
    with pytest.raises(InputError, match="assignment"):
        S.SimConfig(assignment="sometimes")


def test_window_semantics_default_and_paper():
    assert S.SimConfig().window_json() == {"floor": "per-task", "quality": "raw", "assignment": "per-request",
                                           "stress": "none"}
    assert S.SimConfig.paper_faithful().window_json() == {"floor": "pooled", "quality": "raw",
                                                          "assignment": "expected", "stress": "none"}


def test_paper_static_ci_feb_year_mean_later_previous_window():
    tr = _trace(_ci_year(seed=3))
    feb, jun = 800, 3900
    assert S.static_mean_ci(tr, feb, 720, "paper") == pytest.approx(tr.mean())
    assert S.static_mean_ci(tr, jun, 720, "paper") == pytest.approx(float(np.mean(tr.ci[jun - 720:jun])))
    assert S.static_mean_ci(tr, feb, 720, "previous-window") == pytest.approx(float(np.mean(tr.ci[80:800])))
    assert S.SimConfig.paper_faithful().static_ci == "paper"


def _cli(monkeypatch, prof):
    from sprout_core.cli import main

    tr = _trace(_ci_year())
    monkeypatch.setattr(profiles, "load_profile", lambda name, q_handoff=None: prof)
    monkeypatch.setattr("sprout_core.grid.load_trace", lambda zone, year, column="direct", data_dir=None: tr)
    return main


def test_cli_floor_and_stress_flags(capsys, monkeypatch):
    main = _cli(monkeypatch, _prof_with_table(per_task=300))
    base = ["simulate", "--zone", "SYN", "--start-hour", "100", "--hours", "48", "--json", "--strategies", "SPROUT"]
    assert main(base) == 0
    w = json.loads(capsys.readouterr().out)["_window"]
    assert (w["floor"], w["assignment"], w["stress"], w["quality"]) == ("per-task", "per-request", "none", "raw")
    assert main(base + ["--pooled-floor", "--stress", "held-out", "--seed", "3"]) == 0
    w = json.loads(capsys.readouterr().out)["_window"]
    assert (w["floor"], w["stress"]) == ("pooled", "held-out")
    assert main(base + ["--per-task-floor"]) == 0                       # the old flag stays accepted
    assert json.loads(capsys.readouterr().out)["_window"]["floor"] == "per-task"
    assert main(base + ["--paper-faithful"]) == 0
    assert json.loads(capsys.readouterr().out)["_window"]["floor"] == "pooled"


@pytest.mark.parametrize("extra,match", [
    (["--pooled-floor", "--per-task-floor"], "contradict"),
    (["--stress", "half"], None),
    (["--stress", "held-out", "--paper-faithful"], "stress"),
])
def test_cli_bad_floor_and_stress_values(capsys, monkeypatch, extra, match):
    main = _cli(monkeypatch, _prof_with_table(per_task=300))
    try:
        rc = main(["simulate", "--zone", "SYN", "--hours", "24", *extra])
    except SystemExit as e:   # argparse refuses an unknown choice
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if match:
        assert match in err


def test_latest_year_per_zone_is_one_rule():
    from types import SimpleNamespace as NS

    from sprout_core import defaults

    infos = [NS(zone="A", year=2021), NS(zone="A", year=2023), NS(zone="B", year=2022), NS(zone="A", year=2022)]
    assert defaults.latest_years(infos) == {"A": 2023, "B": 2022}
    assert defaults.latest_year([]) is None and defaults.latest_year([2020, 2024]) == 2024
    assert defaults.default_year([2021, 2022]) == 2022 and defaults.default_year([2023, 2024]) == 2023


def test_cli_optimize_floor_flags(capsys):
    from sprout_core.cli import main

    base = ["optimize", "--zone", "US-TEX-ERCO", "--ci", "400", "--json"]
    assert main(base + ["--pooled-floor"]) == 0
    assert json.loads(capsys.readouterr().out)["floor"] == "pooled"
    for extra, match in ((["--per-task-floor"], "simulate"), (["--per-task-floor", "--pooled-floor"], "contradict")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err

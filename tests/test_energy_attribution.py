"""Energy of overlapping requests on one shared device, split by tokens (sprout_core.energy.attribution)."""
from __future__ import annotations

import random
import threading
import time

import pytest

from sprout_core.energy import (
    FLAG_REMOTE,
    FLAG_SHARED,
    AttributedMeter,
    EnergyMeter,
    MeterSum,
    NullMeter,
    Sample,
    attribute,
    split_interval,
)
from sprout_core.energy.attribution import RequestSpan
from sprout_core.energy.base import FLAG_WHOLE_DEVICE


class ClockMeter(EnergyMeter):
    """A counter meter on a hand-driven clock: ``advance(dt, watts)`` moves time and energy."""

    name = "fake"
    method = "measured:fake-counter"
    counter_based = True
    power_uncertainty_w = 2.0
    base_flags = (FLAG_WHOLE_DEVICE,)

    def __init__(self):
        super().__init__("gpu")
        self.now, self.energy, self.power = 100.0, 5_000.0, 0.0

    def advance(self, dt, watts):
        self.now += dt
        self.energy += watts * dt
        self.power = watts

    def sample(self):
        return Sample(self.now, self.energy, self.power)

    def describe(self):
        return "fake counter"


class ManualSampler:
    """Stands in for the process sampler: the test decides when a periodic reading happens."""

    def __init__(self):
        self.feeds = []

    def subscribe(self, feed):
        self.feeds.append(feed)

    def unsubscribe(self, feed):
        self.feeds.remove(feed)

    def tick(self):
        for f in list(self.feeds):
            f._add(f.meter.sample())


def test_split_interval_is_proportional_to_tokens_and_adds_up():
    parts = split_interval(10.0, {"a": 3, "b": 1, "c": 0})
    assert parts == pytest.approx({"a": 7.5, "b": 2.5, "c": 0.0})
    assert split_interval(9.0, {"a": 0, "b": 0, "c": 0}) == pytest.approx({"a": 3.0, "b": 3.0, "c": 3.0})
    assert split_interval(5.0, {}) == {}
    assert sum(split_interval(1.0, {i: i for i in range(7)}).values()) == pytest.approx(1.0)


def test_attribute_replays_the_rule_on_a_synthetic_overlap():
    # t:      0    1    2    3    4
    # A:      [-------------]            tokens at 0.5, 1.5, 1.6, 2.5
    # B:           [--------------]      tokens at 1.4, 2.6, 2.7, 3.5
    # meter: 10 J per second; idle after 4
    readings = [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    reqs = [RequestSpan("A", 0, 3, (0.5, 1.5, 1.6, 2.5)), RequestSpan("B", 1, 4, (1.4, 2.6, 2.7, 3.5))]
    res = attribute(readings, reqs)
    # [0,1]: A alone 10 J; [1,2]: A 2 tokens, B 1 -> 6.67/3.33; [2,3]: A 1, B 2 -> 3.33/6.67; [3,4]: B alone 10
    assert res.energy_j["A"] == pytest.approx(10 + 20 / 3 + 10 / 3)
    assert res.energy_j["B"] == pytest.approx(10 / 3 + 20 / 3 + 10)
    assert res.busy_j == pytest.approx(40) and res.idle_j == pytest.approx(10)
    assert sum(res.energy_j.values()) == pytest.approx(res.busy_j)
    with pytest.raises(ValueError):
        attribute(readings, [RequestSpan("C", 0.5, 2)])  # a start that is not a reading


def test_live_ledger_with_four_overlapping_requests_matches_the_replay_and_adds_up():
    rng = random.Random(7)
    meter, sampler = ClockMeter(), ManualSampler()
    led = AttributedMeter(meter, sampler=sampler)
    readings, spans, windows = [], {}, {}
    counts = {}
    # 4 requests start 0.3 s apart; each makes tokens at its own rate; power varies per interval
    plan = {0: (0.0, 3.0, 40), 1: (0.3, 2.4, 15), 2: (0.6, 3.6, 25), 3: (0.9, 1.5, 60)}  # start, length, tokens/s
    t0 = meter.now
    step = 0.05
    events = sorted([(s, "start", i) for i, (s, _, _) in plan.items()] + [(s + d, "end", i) for i, (s, d, _) in plan.items()])
    clock = 0.0
    while events or clock < 0.1:
        nxt = events[0][0] if events else clock + step
        while clock + step < nxt - 1e-9:  # periodic readings between events, tokens in between
            for i, w in windows.items():
                rate = plan[i][2]
                n = rng.choice([0, 1, 2]) if rate > 30 else rng.choice([0, 0, 1])
                if n:
                    meter.advance(step / 2, 150 + rng.random() * 50)
                    counts[i] += n
                    spans[i][2].extend([meter.now] * n)
                    w.add_tokens(counts[i])
                    meter.advance(step / 2, 150 + rng.random() * 50)
                else:
                    meter.advance(step, 150 + rng.random() * 50)
            if not windows:
                meter.advance(step, 80)
            clock += step
            sampler.tick()
            if windows:
                readings.append((meter.now, meter.energy))
        if not events:
            break
        meter.advance(nxt - clock, 170)
        clock = nxt
        _, kind, i = events.pop(0)
        if kind == "start":
            w = led.window()
            w.__enter__()
            windows[i], counts[i] = w, 0
            spans[i] = [meter.now, None, []]
        else:
            w = windows.pop(i)
            w.__exit__(None, None, None)
            spans[i][1] = meter.now
            spans[i].append(w.reading)
        readings.append((meter.now, meter.energy))
    got = {i: spans[i][3] for i in plan}
    total = sum(r.energy_j for r in got.values())
    assert total == pytest.approx(led.attributed_j, rel=1e-12)
    busy = attribute(sorted(set(readings)), [RequestSpan(i, s[0], s[1], tuple(s[2])) for i, s in spans.items()])
    for i in plan:
        assert got[i].energy_j == pytest.approx(busy.energy_j[i], rel=1e-9)
        assert got[i].method == "measured:fake-counter"  # splitting keeps the method: a measurement stays one
        assert FLAG_SHARED in got[i].flags and FLAG_WHOLE_DEVICE in got[i].flags
        assert got[i].energy_j > 0 and got[i].uncertainty_j > 0
    assert total == pytest.approx(busy.busy_j, rel=1e-9)
    # the requests that made more tokens while overlapping carry more energy per second
    assert got[3].energy_j / got[3].duration_s > got[1].energy_j / got[1].duration_s
    assert sampler.feeds == []  # idle: nothing sampled
    assert led.in_flight == 0 and meter.now > t0


def test_a_request_alone_gets_the_whole_counter_difference():
    meter, sampler = ClockMeter(), ManualSampler()
    led = AttributedMeter(meter, sampler=sampler)
    meter.advance(1.0, 300)  # idle before: not attributed
    with led.window() as w:
        for k in range(1, 11):
            meter.advance(0.1, 200)
            w.add_tokens(k)
            sampler.tick()
            assert w.live()[1] == pytest.approx(20.0 * k)
    assert w.reading.energy_j == pytest.approx(200.0)
    assert w.reading.duration_s == pytest.approx(1.0)
    assert w.reading.power_w_mean == pytest.approx(200.0)
    assert FLAG_SHARED not in w.reading.flags
    assert w.reading.uncertainty_j == pytest.approx(2.0 * 1.0)  # ± W × seconds of its share
    assert led.idle_j == 0.0  # the idle second before the first request is never read


def test_no_tokens_in_an_interval_splits_it_equally():
    meter, sampler = ClockMeter(), ManualSampler()
    led = AttributedMeter(meter, sampler=sampler)
    a, b = led.window(), led.window()
    a.__enter__()
    b.__enter__()
    meter.advance(1.0, 100)  # both reading their prompts: no tokens
    sampler.tick()
    a.add_tokens(3)
    meter.advance(1.0, 100)  # only a produced tokens
    a.__exit__(None, None, None)
    b.__exit__(None, None, None)
    assert a.reading.energy_j == pytest.approx(150.0)
    assert b.reading.energy_j == pytest.approx(50.0)
    # ± 2 W over each one's share of the seconds: a had 0.5 + 1.0 s, b 0.5 s
    assert a.reading.uncertainty_j == pytest.approx(3.0)
    assert b.reading.uncertainty_j == pytest.approx(1.0)


def test_remote_and_unavailable_meters_give_none_never_zero():
    from sprout_core.serving.energy import RemoteServerMeter

    led = AttributedMeter(RemoteServerMeter("10.1.2.3:8000"))
    with led.window() as w:
        w.add_tokens(5)
        assert w.live() == (None, None)
    assert w.reading.energy_j is None and w.reading.method == "n/a"
    assert FLAG_REMOTE in w.reading.flags
    assert w.reading.label() == "n/a (remote server)"
    assert "remote server" in led.describe()
    off = AttributedMeter(NullMeter("server", "switched off"))
    with off.window() as w2:
        pass
    assert w2.reading.energy_j is None and w2.reading.label() == "n/a"


def test_a_failing_meter_reading_is_flagged_not_zero():
    class Broken(ClockMeter):
        fail = False

        def sample(self):
            if self.fail:
                raise OSError("device gone")
            return super().sample()

    m = Broken()
    led = AttributedMeter(m, sampler=ManualSampler())
    with led.window() as w:
        m.advance(1, 100)
        m.fail = True
    assert w.reading.energy_j is None and "meter-error" in w.reading.flags and "device gone" in w.reading.source
    assert led.in_flight == 0


def test_power_only_meters_are_integrated():
    class PowerOnly(ClockMeter):
        counter_based = False

        def sample(self):
            return Sample(self.now, None, self.power)

    m = PowerOnly()
    m.power = 100.0
    sampler = ManualSampler()
    led = AttributedMeter(m, sampler=sampler)
    with led.window() as w:
        for _ in range(4):
            m.advance(0.5, 100.0)
            sampler.tick()
    assert w.reading.energy_j == pytest.approx(200.0)


def test_meter_sum_adds_counters_and_refuses_a_partial_sum():
    a, b = ClockMeter(), ClockMeter()
    a.advance(1, 100)
    b.advance(1, 300)
    s = MeterSum([a, b], label="two GPUs")
    x = s.sample()
    assert x.energy_j == pytest.approx(a.energy + b.energy) and x.power_w == pytest.approx(400)
    assert s.power_uncertainty_w == pytest.approx(4.0) and s.describe() == "two GPUs"

    class NoCounter(ClockMeter):
        def sample(self):
            return Sample(self.now, None, 10.0)

    assert MeterSum([a, NoCounter()]).sample().energy_j is None
    with pytest.raises(ValueError):
        MeterSum([])


def test_real_threads_and_sampler_split_by_token_rate():
    """Four threads on the real process sampler, constant 100 W: energy shares follow token rates."""

    class Wall(EnergyMeter):
        name, method, counter_based = "wall", "measured:wall", True

        def sample(self):
            t = time.perf_counter()
            return Sample(t, 100.0 * t, 100.0)

        def describe(self):
            return "100 W × wall time"

    led = AttributedMeter(Wall())
    barrier = threading.Barrier(4)
    stop = threading.Event()
    readings = {}
    rates = {0: 1, 1: 1, 2: 2, 3: 4}  # tokens per 10 ms tick

    def worker(i):
        barrier.wait()
        with led.window() as w:
            n = 0
            while not stop.is_set():
                n += rates[i]
                w.add_tokens(n)
                time.sleep(0.01)
        readings[i] = w.reading

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    total = sum(r.energy_j for r in readings.values())
    assert total == pytest.approx(led.attributed_j, rel=1e-9)
    assert total == pytest.approx(100.0 * max(r.duration_s for r in readings.values()), rel=0.1)
    share = {i: readings[i].energy_j / total for i in readings}
    assert share[3] > share[2] > share[0]
    assert share[3] == pytest.approx(4 / 8, abs=0.12)
    assert all(FLAG_SHARED in r.flags for r in readings.values())

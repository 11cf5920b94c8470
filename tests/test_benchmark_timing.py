"""The benchmark harness's timing (not the benchmarks themselves, which are not tests)."""
import time

from benchmarks.timing import median_step_times


def test_frameworks_take_turns_in_blocks_with_warmup():
    calls = []

    def step(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)
        return run

    a, b = median_step_times([step("a", 0.002), step("b", 0.004)], [lambda: None] * 2,
                             repeat=7, warmup=1, rounds=3, pause=0.0)
    # 7 timed steps split 3, 2, 2 over the rounds, each block after 1 warm-up step
    assert "".join(calls) == "aaaa" "bbbb" "aaa" "bbb" "aaa" "bbb"
    assert 0.002 <= a < b and b >= 0.004

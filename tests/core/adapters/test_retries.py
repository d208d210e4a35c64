"""The per-API retry policy, driven with plain numbers for time and randomness."""

from __future__ import annotations

import pytest

from efs_csi.adapters.retries import (
    ApiRetryState,
    Outcome,
    RetryQuota,
    RetrySettings,
    RetryStates,
    backoff_delay,
)

ADAPTIVE = RetrySettings(max_attempts=10, adaptive=True)
STANDARD = RetrySettings(max_attempts=10, adaptive=False)


@pytest.mark.parametrize(("attempt", "draw", "expected"), [
    (1, 0.0, 0.0),
    (1, 0.5, 0.125),  # half of the base 0.25 s
    (3, 0.5, 0.5),  # half of 1 s
    (10, 0.999, 0.999 * 20.0),  # capped at max_delay
    (500, 0.5, 10.0),  # huge attempt numbers do not overflow
])
def test_backoff_is_full_jitter_exponential_with_a_cap(attempt: int, draw: float,
                                                       expected: float) -> None:
    assert backoff_delay(attempt, draw, STANDARD) == pytest.approx(expected)


def test_quota_gives_and_takes_back() -> None:
    quota = RetryQuota(12)
    assert quota.acquire(5) and quota.acquire(5)
    assert not quota.acquire(5)
    assert quota.available == 2  # a refused acquire takes nothing
    quota.refund(100)
    assert quota.available == 12  # never above capacity


def test_fatal_answers_and_the_last_attempt_are_not_retried() -> None:
    state = ApiRetryState(STANDARD)
    assert state.may_retry(Outcome.FATAL, 1) is None
    assert state.may_retry(Outcome.THROTTLED, 10) is None
    assert state.may_retry(Outcome.THROTTLED, 9) == 5
    assert state.may_retry(Outcome.TIMEOUT, 1) == 10
    assert state.quota.available == 500 - 15


def test_an_exhausted_quota_fails_calls_at_once_and_successes_refill_it() -> None:
    state = ApiRetryState(RetrySettings(quota_capacity=10, adaptive=False))
    assert state.may_retry(Outcome.TRANSIENT, 1) == 5
    assert state.may_retry(Outcome.TRANSIENT, 1) == 5
    assert state.may_retry(Outcome.TRANSIENT, 1) is None  # budget spent: no retry storm
    state.succeeded(5)  # a retried call that succeeded gives its cost back
    assert state.quota.available == 5
    state.succeeded(0)  # a first-try success adds one token
    assert state.quota.available == 6


def delay(state: ApiRetryState, now: float) -> float:
    """A new caller's first wait at ``now`` (it sends when that is 0, and stays in flight)."""
    pause = state.wait(state.take_ticket(now), now, now)
    assert pause is not None
    if pause == 0:
        state.sending()
    return pause


def throttle_every(state: ApiRetryState, nth: int, answers: int, start: float = 0.0,
                   spacing: float = 0.01) -> float:
    """Feed ``answers`` answers, every ``nth`` one throttled; return the time after them."""
    now = start
    for number in range(answers):
        state.record(Outcome.THROTTLED if number % nth == 0 else Outcome.SUCCESS, now)
        now += spacing
    return now


def test_random_throttling_never_engages_the_limiter() -> None:
    state = ApiRetryState(ADAPTIVE)
    now = throttle_every(state, 5, 1000)  # 20 % of answers throttled
    assert not state.limiter.engaged
    assert delay(state, now) == 0.0
    assert delay(state, now) == 0.0


def test_dominating_throttles_engage_the_limiter_at_the_rate_that_succeeded() -> None:
    state = ApiRetryState(ADAPTIVE)
    now = 0.0
    for _ in range(20):  # 20 successes within the last second
        state.record(Outcome.SUCCESS, now)
        now += 0.01
    for _ in range(25):
        state.record(Outcome.THROTTLED, now)
        now += 0.001
    assert state.limiter.engaged
    assert state.limiter.rate is not None and state.limiter.rate <= 20.0
    rate = state.limiter.rate
    waits = [delay(state, now) for _ in range(3)]
    assert waits[1] - waits[0] == pytest.approx(1 / rate)
    assert waits[2] - waits[1] == pytest.approx(1 / rate)


def test_throttles_answered_first_do_not_dominate_while_most_attempts_are_unanswered() -> None:
    """A burst of 100 with 20 throttled: the throttles come back first (no upstream work)."""
    state = ApiRetryState(ADAPTIVE)
    for _ in range(100):
        state.sending()
    for step in range(20):
        state.record(Outcome.THROTTLED, step * 0.001)
    assert not state.limiter.engaged
    for step in range(40):  # were these answered first, throttles would dominate
        state.sending()
        state.record(Outcome.THROTTLED, 0.05 + step * 0.001)
    assert not state.limiter.engaged  # 60 of 140, the other 80 may yet succeed
    for _ in range(80):
        state.record(Outcome.SUCCESS, 0.1)
    assert state.in_flight == 0
    assert not state.limiter.engaged


def test_standard_mode_never_rate_limits() -> None:
    state = ApiRetryState(STANDARD)
    now = throttle_every(state, 1, 100)  # every answer throttled
    assert not state.limiter.engaged
    assert delay(state, now) == 0.0


def engaged(rate: float) -> ApiRetryState:
    """A limiter engaged at ``rate``, with one call of the API out (so callers queue)."""
    state = ApiRetryState(ADAPTIVE)
    state.limiter.engage(0.0, rate)
    state.sending()
    return state


def test_throttles_halve_the_rate_at_most_once_per_cooldown() -> None:
    state = engaged(40.0)
    state.record(Outcome.THROTTLED, 1.0)
    assert state.limiter.rate == 20.0
    state.record(Outcome.THROTTLED, 1.1)  # the same overshoot answering late
    assert state.limiter.rate == 20.0
    state.record(Outcome.THROTTLED, 1.6)
    assert state.limiter.rate == 10.0
    for step in range(100):
        state.record(Outcome.THROTTLED, 2.0 + step)
    assert state.limiter.rate == ADAPTIVE.min_rate


def test_successes_raise_the_rate_by_a_share_of_itself_or_a_minimum_step() -> None:
    state = engaged(10.0)
    state.record(Outcome.SUCCESS, 1.0)  # +50 % of 10 per second
    assert state.limiter.rate == pytest.approx(15.0)
    slow = engaged(1.0)
    slow.record(Outcome.SUCCESS, 1.0)  # the minimum step, 2 per second
    assert slow.limiter.rate == pytest.approx(3.0)


def test_a_throttle_for_an_attempt_sent_before_the_last_cut_does_not_cut_again() -> None:
    state = engaged(40.0)
    state.record(Outcome.THROTTLED, 1.0, sent_at=0.9)
    assert state.limiter.rate == 20.0
    state.record(Outcome.THROTTLED, 2.0, sent_at=0.95)  # sent at the old rate
    assert state.limiter.rate == 20.0
    state.record(Outcome.THROTTLED, 2.1, sent_at=1.5)
    assert state.limiter.rate == 10.0


def test_the_limiter_lets_go_once_nobody_waits() -> None:
    state = engaged(10.0)
    assert delay(state, 0.0) > 0  # queued: the limiter is working
    assert delay(state, 10.0) == 0.0  # nothing queued since 0.0: released
    assert not state.limiter.engaged


def test_throttled_retries_take_no_quota_in_adaptive_mode_only() -> None:
    state = ApiRetryState(ADAPTIVE)
    assert state.may_retry(Outcome.THROTTLED, 1) == 0
    assert state.quota.available == ADAPTIVE.quota_capacity
    assert state.may_retry(Outcome.TRANSIENT, 1) == 5  # a 5xx is not the limiter's business
    assert ApiRetryState(STANDARD).may_retry(Outcome.THROTTLED, 1) == 5


def test_each_api_has_its_own_state() -> None:
    states = RetryStates(ADAPTIVE)
    describe = states["DescribeAccessPoints"]
    now = throttle_every(describe, 1, 100)
    for _ in range(100):
        describe.may_retry(Outcome.TRANSIENT, 1)
    assert describe.limiter.engaged and describe.quota.available == 0
    create = states["CreateAccessPoint"]
    assert create is states["CreateAccessPoint"]
    assert not create.limiter.engaged
    assert create.quota.available == ADAPTIVE.quota_capacity
    assert delay(create, now) == 0.0


def test_settings_refuse_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetrySettings(max_attempts=0)


def test_a_call_that_has_queued_too_long_gives_up() -> None:
    state = ApiRetryState(RetrySettings(max_queue_delay=2.0))
    state.limiter.engage(0.0, 1.0)
    ticket = state.take_ticket(0.0)
    for _ in range(4):
        state.take_ticket(0.0)
    last = state.take_ticket(0.0)
    assert state.wait(ticket, 1.0, 0.0) == 0.0
    assert state.wait(last, 1.5, 0.0) == 1.0
    assert state.wait(last, 2.5, 0.0) is None


def test_a_rate_raised_while_callers_queue_applies_to_them_at_once() -> None:
    state = engaged(1.0)
    tickets = [state.take_ticket(0.0) for _ in range(5)]
    assert tickets == [1, 2, 3, 4, 5]
    assert state.wait(1, 1.0, 0.0) == 0.0
    assert state.wait(5, 1.0, 0.0) == 1.0  # asked again within a second at most
    state.record(Outcome.SUCCESS, 1.0)  # the rate rises to 3 per second
    assert state.wait(4, 2.0, 0.0) == 0.0
    assert state.wait(5, 2.0, 0.0) == pytest.approx(1 / 3)


def test_places_given_back_never_hold_up_the_next_caller() -> None:
    """100 % throttling: ten calls queue behind the limiter at its lowest rate and give up
    (deadline, cancellation); once the API answers again the next caller goes out at once,
    not behind their ten places (which at 0.5/s would have held it 20 s)."""
    state = ApiRetryState(ADAPTIVE)
    now = throttle_every(state, 1, 50)  # every answer throttled: engaged at the floor
    assert state.limiter.rate == ADAPTIVE.min_rate
    now += 2.0
    assert delay(state, now) == 0.0  # the one send earned meanwhile
    abandoned = [state.take_ticket(now) for _ in range(10)]
    for ticket in abandoned:
        pause = state.wait(ticket, now, now)
        assert pause is not None and pause > 0
    for ticket in abandoned:
        state.leave(ticket)
    assert state.limiter.waiting == 0
    now += 3.0  # the next create arrives while the limiter is still engaged
    assert state.limiter.engaged
    assert delay(state, now) == 0.0


def test_a_place_given_back_moves_the_ones_behind_it_up() -> None:
    state = engaged(1.0)
    first, second, third = (state.take_ticket(0.0) for _ in range(3))
    assert state.wait(third, 0.5, 0.0) == 1.0  # two places ahead, half a credit earned
    state.leave(first)
    state.leave(second)
    assert state.wait(third, 1.0, 0.0) == 0.0  # now first in line with a credit earned
    assert state.limiter.waiting == 0


def test_leaving_spends_no_credit_and_keeps_none_for_the_departed() -> None:
    state = engaged(1.0)
    tickets = [state.take_ticket(0.0) for _ in range(5)]
    assert state.wait(tickets[-1], 4.0, 0.0) == 1.0  # four credits, fifth in line
    for ticket in tickets[:-1]:
        state.leave(ticket)
    # Credit beyond the callers still waiting (plus one) is not kept for those who left.
    assert state.limiter.credit == 2.0
    assert state.wait(tickets[-1], 4.0, 0.0) == 0.0
    assert state.limiter.credit == 1.0
    state.leave(tickets[-1])  # already spent: nothing to give back
    assert state.limiter.credit == 1.0


def test_a_call_that_queued_too_long_gives_its_place_back() -> None:
    state = ApiRetryState(RetrySettings(max_queue_delay=2.0))
    state.limiter.engage(0.0, 1.0)
    stuck = [state.take_ticket(0.0) for _ in range(5)]
    assert state.wait(stuck[-1], 3.0, 0.0) is None
    assert stuck[-1] not in state.limiter.queue
    assert state.limiter.waiting == 4


def test_a_lone_call_never_waits_for_the_rate_to_earn_it_a_send() -> None:
    """The limiter paces calls against each other: with nothing of the API queued or in
    flight, a call goes out at once (its own retries are spaced by their backoff); the next
    one, while the first is out, waits its turn."""
    state = ApiRetryState(ADAPTIVE)
    state.limiter.engage(0.0, ADAPTIVE.min_rate)
    assert delay(state, 0.1) == 0.0
    assert delay(state, 0.2) == 1.0  # its send is 2 s away: it asks again within 1 s

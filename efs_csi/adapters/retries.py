"""When to retry an EFS call, how long to wait first, and how fast to send: pure logic, no I/O.

botocore keeps its retry state per client, shared by every API of the client: one throttled API
would drain the retry quota (standard mode) or cut the send rate (adaptive mode) of all the
others. Like the reference driver (one retryer per EFS API), ``efs_csi.adapters.aws`` turns
botocore's retries off and keeps one ``ApiRetryState`` per API:

- ``RetryQuota``: a retry budget (a token bucket as in the AWS SDKs' standard mode: a retry
  costs ``retry_cost`` tokens, ``timeout_cost`` after a timeout, a success gives back what its
  retries cost, or ``success_refill`` for a first-try success). When the API keeps failing, the
  budget runs out and calls fail at once instead of storming the service with retries.
- ``backoff_delay``: full-jitter exponential backoff, ``uniform(0, min(cap, base * 2**n))``.
- ``RateLimiter``, adaptive mode only: a client-side send rate (AIMD) that engages only when
  throttles *dominate* a recent window of answers (more than ``engage_share`` of at least
  ``min_samples``). Throttling that does not follow our request rate (a random 20 % of answers)
  never engages it (unanswered attempts count as possible successes: throttles come back
  first), so it costs retries, not throughput; throttling that follows the rate (a
  server allowing N calls per second) engages it at the rate that succeeded in the last second
  (and never keeps it below that). It halves on throttles (at most once per ``cooldown``, and
  only for attempts sent since the last cut), grows each second by ``increase_fraction`` of
  itself (at least ``increase_per_s``), and lets go once no caller has had to wait for
  ``release_after`` seconds. In adaptive mode a throttled call's retries take no quota: the
  limiter keeps them from storming (and ``max_attempts`` bounds each call), while the quota
  still guards against 5xx and timeouts; spending it on the first wave of a burst that met a
  rate limit would fail calls the limiter is about to pace. A call that has queued
  ``max_queue_delay`` for its turn fails instead of waiting on.

What a call holds, it gives back however it ends: its place in the limiter's queue (sent,
given up, cancelled or out of time: ``leave``) and its count among the attempts in flight
(``record`` or ``abandoned``). So once the API answers again, the next call goes out at once,
never behind the places of calls abandoned while it throttled (nor, when it is alone, behind
a rate that has yet to earn it a send: ``ApiRetryState.take_ticket``). The retry quota is not
held but spent: retries that were answered with failures keep it drained until successes
refill it, as in the AWS SDKs.

Every method takes the time (``now``, monotonic seconds) and the random draw from the caller,
so tests drive them with plain numbers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    """What one attempt came back with, as the retry policy sees it."""

    SUCCESS = "success"
    THROTTLED = "throttled"
    TRANSIENT = "transient"  # 5xx, connection reset: worth a retry
    TIMEOUT = "timeout"  # no answer in time: worth a retry, costs more quota
    FATAL = "fatal"  # anything else: the answer stands


RETRYABLE = frozenset({Outcome.THROTTLED, Outcome.TRANSIENT, Outcome.TIMEOUT})


@dataclass(frozen=True)
class RetrySettings:
    """The knobs, with the AWS SDKs' standard-mode quota figures.

    The default base delay is shorter than the SDKs' one second: a create keeps a user's pod
    waiting, and in adaptive mode the quota and the limiter, not a long first wait, keep
    retries from storming (``efs_csi.adapters.aws.client.retry_settings`` picks per mode).
    """

    max_attempts: int = 5
    adaptive: bool = True
    base_delay: float = 0.25
    max_delay: float = 20.0
    quota_capacity: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10
    success_refill: int = 1
    # The adaptive limiter.
    window: int = 200  # answers remembered per API
    window_seconds: float = 10.0  # ... and for how long
    min_samples: int = 10
    engage_share: float = 0.5
    unanswered_weight: float = 1.0
    min_rate: float = 0.5  # calls per second
    decrease_factor: float = 0.5
    cooldown: float = 0.5
    increase_per_s: float = 2.0  # calls per second, added each second ...
    increase_fraction: float = 0.5  # ... or this share of the rate, if more
    release_after: float = 5.0
    # A call that has waited this long for its turn fails (UNAVAILABLE, the provisioner
    # retries later) instead of queueing without bound behind a throttled API.
    max_queue_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


def backoff_delay(attempt: int, draw: float, settings: RetrySettings) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry); ``draw`` is a
    uniform random number in [0, 1)."""
    ceiling = min(settings.max_delay, settings.base_delay * 2.0 ** min(attempt - 1, 62))
    return draw * ceiling


@dataclass
class RetryQuota:
    """The retry budget of one API (see the module docstring)."""

    capacity: int
    available: int = -1

    def __post_init__(self) -> None:
        if self.available < 0:
            self.available = self.capacity

    def acquire(self, cost: int) -> bool:
        """Take ``cost`` tokens for a retry; False (nothing taken) when the budget is short."""
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def refund(self, amount: int) -> None:
        self.available = min(self.capacity, self.available + amount)


@dataclass
class RateLimiter:
    """A send rate, off (``rate is None``) until engaged, with a queue of numbered places.

    A caller takes a place (``take_ticket``) and may send once the credit earned at the rate
    covers its position in the queue (the places still held ahead of it, plus itself); the rate
    in force *then* applies (callers ask again after each wait), so a rate raised or cut while
    they queue applies to them at once. Sending spends one credit and gives the place up; a
    caller that stops waiting for any other reason (cancelled, out of time, queued too long)
    gives its place back with ``leave``, so abandoned calls never hold up the ones behind them.
    At most one send accumulates beyond the callers waiting (while idle: one).
    """

    settings: RetrySettings
    rate: float | None = None
    credit: float = 0.0  # sends earned and not spent (as of ``credit_at``)
    credit_at: float = 0.0
    queue: dict[int, None] = field(default_factory=dict)  # places held, oldest first
    last_ticket: int = 0
    last_decrease: float = -math.inf
    last_wait: float = -math.inf
    last_increase: float = 0.0

    @property
    def engaged(self) -> bool:
        return self.rate is not None

    @property
    def waiting(self) -> int:
        """Places held in the queue."""
        return len(self.queue)

    def engage(self, now: float, observed_rate: float) -> None:
        self.rate = max(self.settings.min_rate, observed_rate)
        self.credit, self.credit_at = 0.0, now
        self.last_decrease = self.last_increase = self.last_wait = now

    def _release(self) -> None:
        self.rate = None
        self.queue.clear()

    def _advance(self, now: float) -> None:
        if self.rate is not None and now > self.credit_at:
            self.credit = min(len(self.queue) + 1.0,
                              self.credit + (now - self.credit_at) * self.rate)
            self.credit_at = now

    def take_ticket(self, now: float) -> int:
        """A place in the queue (0: off, send now)."""
        if self.rate is None:
            return 0
        if now - self.last_wait > self.settings.release_after:
            self._release()  # nobody queued for a while: the server keeps up without us
            return 0
        self._advance(now)
        self.last_ticket += 1
        self.queue[self.last_ticket] = None
        return self.last_ticket

    def wait(self, ticket: int, now: float, queued_at: float) -> float | None:
        """Seconds the holder of ``ticket`` (queued at ``queued_at``) should wait before asking
        again; 0: send now (the place is spent); None: it has queued longer than
        ``max_queue_delay``, give up (the place is given back)."""
        if self.rate is None or ticket == 0 or ticket not in self.queue:
            self.queue.pop(ticket, None)
            return 0.0
        self._advance(now)
        position = 0
        for held in self.queue:
            if held == ticket:
                break
            position += 1
        if self.credit >= position + 1:
            self.credit -= 1.0
            del self.queue[ticket]
            return 0.0
        if now - queued_at > self.settings.max_queue_delay:
            self.leave(ticket)
            return None
        self.last_wait = now
        # Asked again within a second at most: the rate may rise meanwhile.
        return min(1.0, (position + 1 - self.credit) / self.rate)

    def leave(self, ticket: int) -> None:
        """Give a place back without sending (a no-op for a place already spent or given up):
        the places behind it move up, and the credit it would have used is not kept for it."""
        if ticket in self.queue:
            del self.queue[ticket]
            self.credit = min(self.credit, len(self.queue) + 1.0)

    def _set_rate(self, now: float, rate: float) -> None:
        self._advance(now)
        self.rate = rate

    def on_throttle(self, now: float, sent_at: float) -> None:
        # An attempt sent before the last cut says nothing about the rate now in force.
        if (self.rate is not None and sent_at >= self.last_decrease
                and now - self.last_decrease >= self.settings.cooldown):
            self._set_rate(now, max(self.settings.min_rate,
                                    self.rate * self.settings.decrease_factor))
            self.last_decrease = self.last_increase = now

    def on_success(self, now: float, success_rate: float) -> None:
        """A success; ``success_rate``: successes in the last second. The rate never stays
        below what the server has just accepted (answers to attempts sent before the limiter
        engaged show it)."""
        if self.rate is not None:
            elapsed = max(0.0, now - self.last_increase)
            step = max(self.settings.increase_per_s, self.rate * self.settings.increase_fraction)
            self._set_rate(now, max(self.rate + step * elapsed, success_rate))
            self.last_increase = now


@dataclass
class ApiRetryState:
    """The retry state of one EFS API: its quota, its recent answers, its limiter."""

    settings: RetrySettings
    quota: RetryQuota = field(init=False)
    limiter: RateLimiter = field(init=False)
    # (time, throttled?) of the latest answers, newest last.
    answers: deque[tuple[float, bool]] = field(init=False)
    successes: deque[float] = field(init=False)  # success times within the last second
    in_flight: int = 0  # attempts sent and not answered yet

    def __post_init__(self) -> None:
        self.quota = RetryQuota(self.settings.quota_capacity)
        self.limiter = RateLimiter(self.settings)
        self.answers = deque(maxlen=self.settings.window)
        self.successes = deque()

    def take_ticket(self, now: float) -> int:
        """A place in the limiter's queue (0: no pacing). A lone call (nothing of this API
        queued or in flight) may always send at once: the limiter paces calls against each
        other, and a lone call's retries are spaced by their backoff; so once the API answers
        again, the next call goes out without waiting for the rate to earn it a send."""
        if not self.settings.adaptive:
            return 0
        ticket = self.limiter.take_ticket(now)
        if ticket and self.limiter.waiting == 1 and self.in_flight == 0:
            self.limiter.credit = max(self.limiter.credit, 1.0)
        return ticket

    def wait(self, ticket: int, now: float, queued_at: float) -> float | None:
        """Seconds to wait before asking again; 0: send now; None: queued too long (see
        ``RetrySettings.max_queue_delay``)."""
        return self.limiter.wait(ticket, now, queued_at)

    def leave(self, ticket: int) -> None:
        """The holder of ``ticket`` stops waiting without sending (cancelled, out of time)."""
        self.limiter.leave(ticket)

    def sending(self) -> None:
        """An attempt is sent (its answer must follow: ``record`` or ``abandoned``)."""
        self.in_flight += 1

    def abandoned(self) -> None:
        """A sent attempt will never be answered (its call was cancelled)."""
        self.in_flight = max(0, self.in_flight - 1)

    def record(self, outcome: Outcome, now: float, sent_at: float | None = None) -> None:
        """Note an attempt's answer (every attempt, first tries and retries), sent at
        ``sent_at`` (default: ``now``)."""
        self.abandoned()
        if outcome is Outcome.FATAL:
            return
        throttled = outcome is Outcome.THROTTLED
        self.answers.append((now, throttled))
        if outcome is Outcome.SUCCESS:
            self.successes.append(now)
        if not self.settings.adaptive:
            return
        if throttled:
            if self.limiter.engaged:
                self.limiter.on_throttle(now, now if sent_at is None else sent_at)
            elif self.throttles_dominate(now):
                self.limiter.engage(now, self.success_rate(now))
        elif outcome is Outcome.SUCCESS:
            self.limiter.on_success(now, self.success_rate(now))

    def success_rate(self, now: float) -> float:
        """Successes in the last second: what the server has just shown it accepts."""
        while self.successes and now - self.successes[0] > 1.0:
            self.successes.popleft()
        return float(len(self.successes))

    def throttles_dominate(self, now: float) -> bool:
        """Throttles are more than ``engage_share`` of the recent answers plus the attempts
        still unanswered (each counted ``unanswered_weight``): a throttle is answered faster
        than a success, so a burst's first answers are throttles even when few of its calls
        were."""
        recent = [throttled for at, throttled in self.answers
                  if now - at <= self.settings.window_seconds]
        pending = self.settings.unanswered_weight * self.in_flight
        return (len(recent) >= self.settings.min_samples
                and sum(recent) > self.settings.engage_share * (len(recent) + pending))

    def retry_cost(self, outcome: Outcome) -> int:
        settings = self.settings
        return settings.timeout_cost if outcome is Outcome.TIMEOUT else settings.retry_cost

    def may_retry(self, outcome: Outcome, attempt: int) -> int | None:
        """After attempt number ``attempt`` (from 1) answered ``outcome``: the quota taken for
        a retry (0 when the engaged limiter paces it), or None when the answer stands."""
        if outcome not in RETRYABLE or attempt >= self.settings.max_attempts:
            return None
        if self.settings.adaptive and outcome is Outcome.THROTTLED:
            return 0  # the limiter's business (see the module docstring)
        cost = self.retry_cost(outcome)
        return cost if self.quota.acquire(cost) else None

    def succeeded(self, quota_taken: int) -> None:
        """The call succeeded after its retries took ``quota_taken`` tokens."""
        self.quota.refund(quota_taken if quota_taken else self.settings.success_refill)


class RetryStates:
    """One ``ApiRetryState`` per API name, made on first use."""

    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        self._states: dict[str, ApiRetryState] = {}

    def __getitem__(self, api: str) -> ApiRetryState:
        state = self._states.get(api)
        if state is None:
            state = self._states[api] = ApiRetryState(self.settings)
        return state

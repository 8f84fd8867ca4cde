"""The gateway's rate budgets for hosted upstreams: cost of a request, header learning, 429s.

An upstream with ``rpm``/``tpm`` gets an :class:`~hermes_sdk.server.budget.UpstreamBudget` on its
admission queue, so a request is granted only when the budget allows, in the policy's order
(Gittins-family policies rank its waiters in budget seconds: by the c-mu rule on the run's
waiting stage, :mod:`.budget_stage_rank`, or Gittins on the run, :mod:`.budget_rank`; the best one
that does not fit holds a reservation others backfill within: :mod:`.budget_backfill`). A
request's cost is its input tokens (estimated from the body, ~4 characters a token) plus its
output tokens: ``max_tokens`` when the request sets it (what the provider itself counts when the
request arrives: OpenAI's limit is "the maximum of max_tokens and the estimated number of
tokens based on the character count of your request"), else what the run's PDGraph predicts for
that unit (the node's mean; else :data:`DEFAULT_OUTPUT_TOKENS`); corrected by the response's
``usage``. Every upstream response's
rate-limit headers adapt the budget; a 429 is absorbed: its charge is refunded and the request
queues again at its rank (the budget blocked by ``Retry-After``), so it is resent in the
policy's order, behind the reservation like any waiter, until its upstream's ``timeout_s`` has
passed since it arrived.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Final

from aiohttp import web
from prometheus_client import Counter, Gauge

from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.budget_deadline import DeadlineScale
from hermes_sdk.server.budget_rank import BudgetRanker, aging_of, uses_budget_rank
from hermes_sdk.server.budget_stage_rank import StageRanker
from hermes_sdk.server.provider_limits import parse_limits
from hermes_sdk.server.scheduler import Scheduler
from hermes_sdk.server.upstreams import UpstreamConfig

DEFAULT_OUTPUT_TOKENS: Final = 256
"""Predicted output tokens of a call whose unit has no learned demand and no ``max_tokens``."""
CHARS_PER_TOKEN: Final = 4.0
"""OpenAI's rule of thumb for English text; the estimate is corrected by ``usage`` anyway."""

log = logging.getLogger("hermes_sdk.server.gateway")


def input_tokens_estimate(body: Mapping[str, object]) -> int:
    """Tokens of a request's prompt (``messages``, ``prompt`` or ``input``), ~4 chars each."""
    parts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            content = msg.get("content") if isinstance(msg, dict) else None
            parts.append(content if isinstance(content, str) else json.dumps(content))
    for key in ("prompt", "input"):
        value = body.get(key)
        if value is not None:
            parts.append(value if isinstance(value, str) else json.dumps(value))
    return max(1, math.ceil(sum(len(p) for p in parts) / CHARS_PER_TOKEN))


def output_tokens_estimate(
    scheduler: Scheduler, tenant: str, app: str | None, node: str, body: Mapping[str, object]
) -> int:
    """Output tokens the provider will count: ``max_tokens`` (or ``max_completion_tokens``) when
    set, as providers charge it on arrival; else what the app's PDGraph predicts for ``node``.

    A charge below the provider's would pass the gateway's bucket and meet a 429 whenever the
    budget runs near empty, i.e. always under load."""
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
        return cap
    graph = None if app is None else scheduler.registry.get(app, tenant)
    learned = None if graph is None else graph.nodes.get(node)
    mean = None if learned is None else learned.output_tokens.mean()
    return DEFAULT_OUTPUT_TOKENS if mean is None else max(1, math.ceil(mean))


class BudgetBook:
    """The budgets of every budgeted upstream, attached to their admission queues."""

    def __init__(self, upstreams: tuple[UpstreamConfig, ...], scheduler: Scheduler) -> None:
        self.budgets: dict[str, UpstreamBudget] = {}
        self._shares = scheduler.shares
        registry = scheduler.metrics.registry
        self._absorbed = Counter(
            "hermes_gateway_upstream_429",
            "429s from an upstream, by what became of them (absorbed: retried; passed: the "
            "request's timeout passed and the app got the 429)",
            ["upstream", "outcome"],
            registry=registry,
        )
        self._used = Counter(
            "hermes_gateway_budget_tokens",
            "Tokens charged to a budgeted upstream (estimates corrected by usage)",
            ["upstream"],
            registry=registry,
        )
        self._limit = Gauge(
            "hermes_gateway_budget_limit",
            "A budgeted upstream's limits per minute in force (configured or learned)",
            ["upstream", "kind"],
            registry=registry,
        )
        self.rankers: dict[str, StageRanker | BudgetRanker] = {}
        """Ranks in budget seconds, per budgeted upstream (Gittins-family policies): the c-mu
        rule on the waiting stage (``budget_rank="stage"``) or Gittins on the run (``run``)."""
        for up in upstreams:
            if up.budgeted:
                budget = UpstreamBudget(up.rpm, up.tpm, window_s=up.window_s)
                self.budgets[up.name] = budget
                queue = scheduler.queue(up.name)
                queue.budget = budget
                if scheduler.shares is not None:  # fair shares of the budget, not of slot time
                    queue.on_budget_grant = partial(_charge_share, scheduler, up.name, budget)
                if uses_budget_rank(scheduler.policy):
                    ranker: StageRanker | BudgetRanker
                    if up.budget_rank == "run":
                        ranker = BudgetRanker(scheduler, up.name, budget)
                    else:  # the queue's clock and the budget's are both time.monotonic
                        aging = aging_of(scheduler.policy)
                        scale = DeadlineScale.of(scheduler)
                        deadline = None if scale is None else scale.apply
                        ranker = StageRanker(budget, aging, queue.rerank, budget.now_s, deadline)
                    self.rankers[up.name] = ranker
                    queue.budget_rank = ranker.rank
                self._show_limits(up.name, budget)

    def get(self, upstream: str) -> UpstreamBudget | None:
        """The budget of ``upstream``, None if it has none."""
        return self.budgets.get(upstream)

    def queued(
        self,
        upstream: str,
        tenant: str,
        run_id: str | None,
        app: str | None,
        node: str,
        cost: float = 0.0,
    ) -> AbstractContextManager[None]:
        """While the block runs, ``run_id``'s request of ``cost`` tokens on ``upstream`` waits
        for ``node`` of ``app`` (what its budget-seconds rank is computed from)."""
        ranker = self.rankers.get(upstream)
        if ranker is None or run_id is None:
            return nullcontext()
        return ranker.queued((tenant, run_id), app, node, cost)

    def observe(
        self, upstream: str, status: int, headers: Mapping[str, str], sent_at_s: float
    ) -> bool:
        """Learn from the headers of an upstream response to a request sent at ``sent_at_s``
        (monotonic seconds); True if it is a 429 to absorb."""
        budget = self.budgets.get(upstream)
        if budget is None:
            return False
        try:
            limits = parse_limits(headers, time.time())
        except Exception:  # a provider's odd header must never fail the call
            log.exception("could not read the rate-limit headers of upstream %s", upstream)
            return status == 429
        if not limits.empty:
            budget.observe(limits, sent_at_s)
            self._show_limits(upstream, budget)
        return status == 429

    def settle(self, upstream: str, estimated: int, actual: int | None) -> None:
        """Correct the charge of a finished call by its real tokens (None: keep the estimate)."""
        budget = self.budgets.get(upstream)
        if budget is None:
            return
        if actual is not None:
            budget.settle(estimated, actual)
        self._used.labels(upstream).inc(estimated if actual is None else actual)

    def refund(self, upstream: str, cost: int, tenant: str) -> None:
        """Give back the charge of a request the upstream refused (a 429): to the budget, and to
        ``tenant``'s fair share (charged at the grant, see :func:`_charge_share`)."""
        budget = self.budgets[upstream]
        budget.refund(cost)
        if self._shares is not None:
            self._shares.refund(upstream, tenant, budget.seconds_of(cost))

    def count_429(self, upstream: str, *, absorbed: bool) -> None:
        """Count an upstream 429: absorbed (the request was granted again and resent) or
        passed (its timeout passed first, or its client left: the app got the 429)."""
        self._absorbed.labels(upstream, "absorbed" if absorbed else "passed").inc()

    def _show_limits(self, upstream: str, budget: UpstreamBudget) -> None:
        for kind, value in (("requests", budget.rpm), ("tokens", budget.tpm)):
            if value is not None:
                self._limit.labels(upstream, kind).set(value)


def _charge_share(
    scheduler: Scheduler, upstream: str, budget: UpstreamBudget, tenant: str, tokens: float
) -> None:
    """Charge ``tenant``'s fair share of ``upstream`` the budget seconds of a request of
    ``tokens`` tokens granted now (what it took from the provider's limits; the scheduler
    charges a budgeted upstream no slot-hold seconds)."""
    if scheduler.shares is not None:
        scheduler.shares.charge(upstream, tenant, budget.seconds_of(tokens))


BUDGETS: Final = web.AppKey("hermes_gateway_budgets", BudgetBook)

"""Per-app-class view of a demo run: each app kind's mean completion under each policy, its
ratio to FCFS, and the plain-language note on who pays for Gittins' speed-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

BASELINE = "fcfs"
SAME_WITHIN = 0.05
"""A kind whose mean moved less than this fraction from FCFS's is "about the same": with a
batching engine most kinds move by a few percent, which one run cannot tell from noise."""

KNOBS = (
    "Knobs: the starvation guard (`--policy gittins_aging`; `slowdown_cap` in hermes.toml's "
    "[fairness], default 10: a smaller cap moves the order toward app-FCFS) bounds how long an "
    "app waits relative to its size; fair sharing ([fairness] weights) keeps each tenant's "
    "share of the engine whatever its apps' sizes. "
    "Compare: hermes demo --policy-compare fcfs,gittins,gittins_aging"
)


class HasPerApp(Protocol):
    """What the view needs of a policy's outcome."""

    @property
    def policy(self) -> str: ...

    @property
    def per_app(self) -> Mapping[str, float]: ...


def per_class_vs_baseline(outcomes: Sequence[HasPerApp]) -> dict[str, dict[str, float]]:
    """policy -> app kind -> mean completion under that policy / under FCFS (the first policy
    when FCFS did not run); kinds missing from either side are left out."""
    if not outcomes:
        return {}
    base = next((o for o in outcomes if o.policy == BASELINE), outcomes[0])
    return {
        o.policy: {
            name: mean / base.per_app[name]
            for name, mean in sorted(o.per_app.items())
            if base.per_app.get(name, 0.0) > 0
        }
        for o in outcomes
    }


def trade_note(outcomes: Sequence[HasPerApp]) -> list[str]:
    """One sentence per non-baseline policy naming the app kinds it slowed and sped up against
    FCFS (seconds, ratio; kinds within :data:`SAME_WITHIN` are named as about the same), then
    the knobs; empty when no kind got slower by more than that."""
    if not outcomes:
        return []
    base = next((o for o in outcomes if o.policy == BASELINE), outcomes[0])
    ratios = per_class_vs_baseline(outcomes)
    lines: list[str] = []
    for o in outcomes:
        if o is base:
            continue
        kinds = ratios[o.policy]
        slower = sorted(((r, n) for n, r in kinds.items() if r > 1 + SAME_WITHIN), reverse=True)
        faster = [n for n, r in kinds.items() if r < 1 - SAME_WITHIN]
        same = [n for n, r in kinds.items() if abs(r - 1) <= SAME_WITHIN]
        if not slower:
            continue
        worst = ", ".join(
            f"{n} takes {o.per_app[n]:.1f} s ({r:.2f}x the {base.per_app[n]:.1f} s under "
            f"{base.policy})"
            for r, n in slower
        )
        if faster:
            others = f"the others ({', '.join(faster)})" if not same else ", ".join(faster)
            worst += f", while {others} finish sooner"
        if same:
            worst += f" ({', '.join(same)}: within {SAME_WITHIN:.0%} of {base.policy})"
        lines.append(
            f"{o.policy} trades the largest apps' time for everyone else's: it serves first the "
            f"apps it expects to finish soonest, so {worst}."
        )
    if lines:
        lines.append(KNOBS)
    return lines

"""Stage formation: how the units of one run become the stages of its :class:`RunPath`.

Rule (shared by every producer): the *top-level* units of a run (no parent unit in that run) are
ordered by start time; units whose intervals overlap (transitively) form one stage. All units of a
stage with one name give a stage of that name with ``width`` = number of calls; different names
give a composite node ``"a|b"`` (sorted, unique names). A nested unit's tokens are added to its
top-level ancestor's call, and when that ancestor's kind is ``custom`` the first nested ``llm``
unit lends it its kind and backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hermes_sdk.graph.records import MAX_NAME_CHARS, Call, Stage, UnitKind

NS_PER_S = 1_000_000_000.0


class UnitRecord(Protocol):
    """What stage formation reads of a unit (:class:`~hermes_sdk.instrument.handles.UnitHandle`);
    times are ``perf_counter_ns`` readings, ``end_ns`` is ``None`` while the unit runs."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> UnitKind: ...
    @property
    def backend(self) -> str | None: ...
    @property
    def root(self) -> UnitRecord: ...
    @property
    def start_ns(self) -> int: ...
    @property
    def end_ns(self) -> int | None: ...
    @property
    def wait_ns(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...


@dataclass(slots=True)
class _Rollup:
    """What a top-level unit's call becomes once its descendants are folded in."""

    input_tokens: int | None
    output_tokens: int | None
    kind: UnitKind
    backend: str | None
    llm_start_ns: int | None = None


def _add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _rollups(units: Sequence[UnitRecord]) -> dict[int, _Rollup]:
    out: dict[int, _Rollup] = {}
    for u in units:
        if u.root is u:
            out[id(u)] = _Rollup(u.input_tokens, u.output_tokens, u.kind, u.backend)
    for u in units:
        root = u.root
        if root is u:
            continue
        acc = out.get(id(root))
        if acc is None:  # ancestor not in this run's list (should not happen); skip
            continue
        acc.input_tokens = _add(acc.input_tokens, u.input_tokens)
        acc.output_tokens = _add(acc.output_tokens, u.output_tokens)
        if (
            root.kind == "custom"
            and u.kind == "llm"
            and (acc.llm_start_ns is None or u.start_ns < acc.llm_start_ns)
        ):
            acc.kind = "llm"
            acc.backend = u.backend if root.backend is None else root.backend
            acc.llm_start_ns = u.start_ns
    return out


def _stage(group: list[UnitRecord], rollups: dict[int, _Rollup], end_ns: int) -> Stage:
    calls = []
    kinds: set[str] = set()
    backends: set[str | None] = set()
    names: set[str] = set()
    start = min(u.start_ns for u in group)
    stop = start
    for u in group:
        acc = rollups[id(u)]
        u_end = u.end_ns if u.end_ns is not None else end_ns
        stop = max(stop, u_end)
        calls.append(
            Call(
                service_s=max(u_end - u.start_ns - u.wait_ns, 0) / NS_PER_S,
                input_tokens=acc.input_tokens,
                output_tokens=acc.output_tokens,
                failed=u.failed,
            )
        )
        kinds.add(acc.kind)
        backends.add(acc.backend)
        names.add(u.name)
    node = next(iter(names)) if len(names) == 1 else composite_name(names)
    kind: UnitKind = rollups[id(group[0])].kind if len(kinds) == 1 else "custom"
    backend = next(iter(backends)) if len(backends) == 1 else None
    return Stage(
        node=node,
        calls=tuple(calls),
        kind=kind,
        backend=backend,
        latency_s=(stop - start) / NS_PER_S,
    )


def composite_name(names: set[str]) -> str:
    """``"a|b|c"`` for units that ran in parallel; past the name limit, a stable shortened form
    (a prefix plus a digest of the full name) so the stage is still recorded."""
    full = "|".join(sorted(names))
    if len(full) <= MAX_NAME_CHARS:
        return full
    digest = hashlib.sha1(full.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{full[: MAX_NAME_CHARS - 14]}|#{digest}"


def form_stages(units: Sequence[UnitRecord], end_ns: int) -> tuple[Stage, ...]:
    """The stages of a run from its units; units still open are cut at ``end_ns``.

    Raises :class:`~hermes_sdk.errors.GraphError` only if a record is invalid (e.g. a composite
    name longer than the name limit); callers on the app's path catch it.
    """
    rollups = _rollups(units)
    tops = sorted((u for u in units if u.root is u), key=lambda u: u.start_ns)
    stages: list[Stage] = []
    group: list[UnitRecord] = []
    group_end = 0
    for u in tops:
        u_end = u.end_ns if u.end_ns is not None else end_ns
        if group and u.start_ns < group_end:
            group.append(u)
            group_end = max(group_end, u_end)
            continue
        if group:
            stages.append(_stage(group, rollups, end_ns))
        group = [u]
        group_end = u_end
    if group:
        stages.append(_stage(group, rollups, end_ns))
    return tuple(stages)

"""Fast JSON text of a stored path: byte-identical to ``json.dumps(path_to_dict(path))``.

A completed run is encoded once on its way to the store, on the learner thread, so its cost
bounds how many runs per second one process can store. The generic route builds a dict per
call and stage and lets :mod:`json` walk it (about 40 us for a 13-stage run here); this module
writes the same compact text directly (about 15 us): the head ``{"node":..,"kind":..,
"backend":..`` of a stage is cached per (node, kind, backend), names are escaped by :mod:`json`
itself, numbers are formatted with ``float.__repr__`` / ``int.__repr__`` as :mod:`json` does,
and a width-1 stage reuses its call's seconds text for ``latency_s`` when it is the same float.
The output is checked against the generic encoder in ``tests/store/test_path_json.py``; a value
:mod:`json` would refuse (NaN or infinity, which records never hold) raises ``ValueError``.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Final

from hermes_sdk.graph.records import Call, RunPath, Stage, path_to_dict

_dumps: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_HEADS_MAX: Final = 4096
"""Stage heads cached at most (distinct (node, kind, backend) triples; cleared when full)."""
_heads: dict[tuple[str, str, str | None], str] = {}
_TAILS_MAX: Final = 4096
"""Call tails cached at most (distinct (input tokens, output tokens, failed); cleared when full)."""
_tails: dict[tuple[int | None, int | None, bool], str] = {}
_REPRS_MAX: Final = 8192
"""Call seconds whose text is cached at most (cleared when full). Timings taken in whole
nanoseconds repeat (a soak of microsecond units: ~1,500 distinct values in 260,000 calls), and
``float.__repr__`` (~0.4 us) costs ten times the lookup. Distinct values (seconds-long calls)
would only add a lookup and an insert each: when fewer than half the lookups since the last
clear hit, the cache is off for the next :data:`_REPRS_OFF` stages, then tried again."""
_REPRS_OFF: Final = 32 * _REPRS_MAX
_reprs: dict[float, str] = {}
_repr_tally = [0, 0, 0]
"""Stages seen, stages seen at the last clear, stage count until which the cache is off."""


def _reprs_full() -> None:
    """Clear the full cache; turn it off for a while if it mostly missed."""
    seen, cleared, _ = _repr_tally
    _reprs.clear()
    _repr_tally[1] = seen
    if seen - cleared < 2 * _REPRS_MAX:
        _repr_tally[2] = seen + _REPRS_OFF


def _float(value: float) -> str:
    """``json``'s text of a finite float (``repr``); ValueError for NaN or infinity."""
    text = float.__repr__(value)
    if text[-1] in "nf":  # 'nan', 'inf', '-inf': every finite repr ends with a digit
        raise ValueError(f"out of range float value is not JSON compliant: {value!r}")
    return text


def _number(value: float | int) -> str:
    """JSON text of a number as :mod:`json` writes it (ints stay ints)."""
    return int.__repr__(value) if isinstance(value, int) else _float(value)


def _head(stage: Stage) -> str:
    key = (stage.node, stage.kind, stage.backend)
    head = _heads.get(key)
    if head is None:
        if len(_heads) >= _HEADS_MAX:
            _heads.clear()
        head = _heads[key] = (
            f'{{"node":{_dumps(stage.node)},"kind":{_dumps(stage.kind)},'
            f'"backend":{_dumps(stage.backend)},"latency_s":'
        )
    return head


def _tail(call: Call) -> str:
    """The text of ``call`` after its ``"service_s":`` number, closing brace included; cached
    per (input tokens, output tokens, failed) when the call has no cold start (the usual case:
    a run repeats a few prompt sizes)."""
    cold = call.cold_start_s
    key = (call.input_tokens, call.output_tokens, call.failed)
    if cold is None:
        tail = _tails.get(key)
        if tail is not None:
            return tail
    out = ""
    if call.input_tokens is not None:
        out += ',"input_tokens":' + int.__repr__(call.input_tokens)
    if call.output_tokens is not None:
        out += ',"output_tokens":' + int.__repr__(call.output_tokens)
    if cold is not None:
        out += ',"cold_start_s":' + _number(cold)
    out += ',"failed":true}' if call.failed else "}"
    if cold is None:
        if len(_tails) >= _TAILS_MAX:
            _tails.clear()
        _tails[key] = out
    return out


def _stage(stage: Stage) -> str:
    """A stage of zero or several calls (one call is written inline by :func:`_fast`)."""
    latency = stage.latency_s
    lat = "null" if latency is None else _number(latency)
    body = ",".join(['{"service_s":' + _number(c.service_s) + _tail(c) for c in stage.calls])
    return f'{_head(stage)}{lat},"calls":[{body}]}}'


def _fast(path: RunPath) -> str:
    # a stage of one call (the usual case) is written here: ~4 calls fewer per stage
    parts: list[str] = []
    add = parts.append
    heads, tails = _heads, _tails
    tally = _repr_tally
    seen = tally[0] = tally[0] + len(path.stages)
    reprs: dict[float, str] | None = _reprs if seen >= tally[2] else None
    for stage in path.stages:
        calls = stage.calls
        if len(calls) != 1:
            add(_stage(stage))
            continue
        call = calls[0]
        x = call.service_s
        if type(x) is float:
            service = None if reprs is None else reprs.get(x)  # (0.0 and -0.0: one key)
            if service is None:
                service = float.__repr__(x)
                if service[-1] in "nf":  # 'nan', 'inf', '-inf'
                    _float(x)
                if reprs is not None and x:  # zeros are never cached
                    if len(reprs) >= _REPRS_MAX:
                        _reprs_full()
                    reprs[x] = service
        else:
            service = _number(x)
        latency = stage.latency_s
        if latency is None:
            lat = "null"
        elif latency is x or (latency == x and latency != 0.0):
            lat = service  # the same float (0.0 and -0.0 are equal but print differently)
        else:
            lat = _number(latency)
        head = heads.get((stage.node, stage.kind, stage.backend))
        if head is None:
            head = _head(stage)
        tail = None
        if call.cold_start_s is None:
            tail = tails.get((call.input_tokens, call.output_tokens, call.failed))
        if tail is None:
            tail = _tail(call)
        add(f'{head}{lat},"calls":[{{"service_s":{service}{tail}]}}')
    deadline = "null" if path.deadline_s is None else _number(path.deadline_s)
    tail_ = ""
    paused_s = getattr(path, "paused_s", 0.0)  # optional fields: written only when set
    if paused_s:
        tail_ += ',"paused_s":' + _number(paused_s)
    if getattr(path, "abandoned", False):
        tail_ += ',"abandoned":true'
    return (
        f'{{"app":{_dumps(path.app)},"run_id":{_dumps(path.run_id)},'
        f'"tenant":{_dumps(path.tenant)},"started_at":{_number(path.started_at)},'
        f'"deadline_s":{deadline},"failed":{"true" if path.failed else "false"},'
        f'"stages":[{",".join(parts)}]{tail_}}}'
    )


def _generic(path: RunPath) -> str:
    return _dumps(path_to_dict(path))


_KNOWN_FIELDS: Final = {
    Call: {"service_s", "input_tokens", "output_tokens", "cold_start_s", "failed"},
    Stage: {"node", "calls", "kind", "backend", "latency_s"},
    RunPath: {
        *("app", "stages", "run_id", "tenant", "started_at", "deadline_s", "failed"),
        *("paused_s", "abandoned"),
    },
}
_FAST: Final = all({f.name for f in fields(cls)} <= known for cls, known in _KNOWN_FIELDS.items())
"""False when a record grew a field this encoder does not know: then the generic route runs."""


def path_json(path: RunPath) -> str:
    """Compact JSON text of ``path``, equal to ``json.dumps(path_to_dict(path), separators=
    (",", ":"), allow_nan=False)``; ValueError for a non-finite number."""
    return _fast(path) if _FAST else _generic(path)

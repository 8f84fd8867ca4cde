"""The light suite: the paper's kinds of apps with a lighter tail (no 1000-second apps).

Same structures as :mod:`hermes_sdk.sim.workloads.paper` (and the same token laws where the
paper's apps are already short), but the two long-running apps are scaled down and the loops
and tool times are shorter: GoT merges with 3-6 scorers instead of 20, map-reduce over 3-8
chunks, code feedback with at most four turns and 6-s container runs, HuggingGPT with a
3-15 s DNN step instead of a Pareto tail to 59 s, ALFWorld episodes of ~5 steps. The largest
apps are ~3x the mean instead of ~30x, which is where size-blind scheduling gains little.
"""

from __future__ import annotations

from hermes_sdk.sim.workloads.paper import (
    END,
    about,
    code_feedback,
    factool_code,
    factool_kbqa,
    factool_math,
    hugginggpt,
    multiturn_chat,
    react_alfw,
    react_fever,
)
from hermes_sdk.sim.workloads.spec import (
    JsonObject,
    app,
    int_range,
    llm_unit,
    to,
    uniform,
)


def got_light(weight: float = 1.0) -> JsonObject:
    """A small Graph-of-Thoughts merge: generate (w2) -> score (w3-6) -> aggregate (w1) -> END,
    outputs about half the paper's (paper row got_docmerge, scaled down)."""
    units = {
        "generate": llm_unit(
            uniform(940, 1516), uniform(200, 400), width=int_range(2, 2), next_=[to("score")]
        ),
        "score": llm_unit(
            about(1915), uniform(60, 120), width=int_range(3, 6), next_=[to("aggregate")]
        ),
        "aggregate": llm_unit(uniform(1300, 1600), uniform(200, 400), next_=[to(END)]),
    }
    return app("got_light", weight, "generate", units, got_light.__doc__ or "")


def mapreduce_light(weight: float = 1.0) -> JsonObject:
    """A small map-reduce summarisation: generate_summary (w3-8) -> collapse_summaries (w2,
    p 0.5) -> generate_final_summary -> END (paper row langchain_mapreduce, scaled down)."""
    units = {
        "generate_summary": llm_unit(
            uniform(250, 580),
            uniform(57, 150),
            width=int_range(3, 8),
            next_=[to("collapse_summaries", 0.5), to("generate_final_summary", 0.5)],
        ),
        "collapse_summaries": llm_unit(
            uniform(310, 1000),
            uniform(100, 300),
            width=int_range(2, 2),
            next_=[to("generate_final_summary")],
        ),
        "generate_final_summary": llm_unit(uniform(640, 1500), uniform(200, 500), next_=[to(END)]),
    }
    return app("mapreduce_light", weight, "generate_summary", units, mapreduce_light.__doc__ or "")


def light_apps(*, chat_weight: float = 5.0) -> list[JsonObject]:
    """The light mix: the paper's weights, its two long apps scaled down, plus multi-turn chat."""
    apps = [
        got_light(1.0),
        mapreduce_light(1.0),
        code_feedback(13.0, stop_p=0.5, max_turns=4, exec_s=6.0),
        hugginggpt(13.0, dnn=uniform(3.0, 15.0)),
        factool_code(22.0),
        factool_kbqa(22.0),
        factool_math(3.0),
        react_fever(3.0),
        react_alfw(22.0, stop_p=0.2, max_steps=12),
    ]
    if chat_weight > 0.0:
        apps.append(multiturn_chat(chat_weight, stop_p=0.4, max_turns=6))
    return apps

"""The paper suite: the Hermes evaluation's apps, token laws, widths, loop laws and mix.

Every number below comes from ``WORKLOADS.md`` (the public artifact of the Hermes paper: its
recorded PDGraph samples and its trace generator) unless the docstring says otherwise. Token
ranges "a-b" become ``uniform(a, b)``, "~x" becomes ``uniform(0.95x, 1.05x)``, widths "wa-b" are
integers a..b equally likely. LLM time is the artifact's model (1e-4 s per input token + 0.06 s
per output token at batch size 1). Loops are bounded (``max_visits``) so every run ends.
The resulting size distribution is very heavy-tailed: 1% GoT runs of ~20 minutes of service next
to 22% FacTool/ReAct runs of ~10-40 seconds.
"""

from __future__ import annotations

from hermes_sdk.sim.workloads.spec import (
    JsonObject,
    app,
    bounded_pareto,
    int_range,
    llm_unit,
    lognormal,
    loop_law,
    service_unit,
    to,
    uniform,
)

END = "END"


def about(x: float) -> JsonObject:
    """ "~x" in WORKLOADS.md: +-5% around x."""
    return uniform(round(0.95 * x), round(1.05 * x))


def got_docmerge(weight: float = 1.0) -> JsonObject:
    """Graph-of-Thoughts document merging (WORKLOADS.md row got_docmerge, ~1140 s standalone).

    generate1 (w2) -> score1 (w20, repeats once with p 0.5) -> aggregate (w2) -> score2 (as
    score1) -> generate2 (w1) -> score3 (w20) -> END. The 20-wide scoring stages dominate demand.
    """

    def score(name: str, next_node: str) -> JsonObject:
        return llm_unit(
            about(1915),
            uniform(190, 335),
            width=int_range(20, 20),
            by_visit=loop_law(loop_to=name, exit_to=next_node, stop_p=0.5, max_visits=2),
        )

    units = {
        "generate1": llm_unit(
            uniform(940, 1516), uniform(660, 904), width=int_range(2, 2), next_=[to("score1")]
        ),
        "score1": score("score1", "aggregate"),
        "aggregate": llm_unit(
            uniform(2600, 3230), uniform(690, 904), width=int_range(2, 2), next_=[to("score2")]
        ),
        "score2": score("score2", "generate2"),
        "generate2": llm_unit(uniform(1800, 2490), uniform(660, 1100), next_=[to("score3")]),
        "score3": llm_unit(
            about(1923), uniform(260, 377), width=int_range(20, 20), next_=[to(END)]
        ),
    }
    return app("got_docmerge", weight, "generate1", units, got_docmerge.__doc__ or "")


def langchain_mapreduce(weight: float = 1.0) -> JsonObject:
    """LangChain map-reduce summarisation (row langchain_mapreduce, ~194 s standalone).

    generate_summary (w10-33) -> collapse_summaries (w2-4) with p 0.8, which repeats once with
    p 0.3 ("may repeat"), else straight to -> generate_final_summary (w1) -> END.
    """
    units = {
        "generate_summary": llm_unit(
            uniform(250, 580),
            uniform(57, 250),
            width=int_range(10, 33),
            next_=[to("collapse_summaries", 0.8), to("generate_final_summary", 0.2)],
        ),
        "collapse_summaries": llm_unit(
            uniform(310, 2005),
            uniform(220, 800),
            width=int_range(2, 4),
            by_visit=[
                [to("collapse_summaries", 0.3), to("generate_final_summary", 0.7)],
                [to("generate_final_summary", 1.0)],
            ],
        ),
        "generate_final_summary": llm_unit(uniform(640, 3310), uniform(430, 960), next_=[to(END)]),
    }
    return app(
        "langchain_mapreduce", weight, "generate_summary", units, langchain_mapreduce.__doc__ or ""
    )


def code_feedback(
    weight: float = 13.0, *, stop_p: float = 0.4, max_turns: int = 6, exec_s: float = 12.3
) -> JsonObject:
    """Code generation with container feedback (row code_feedback, ~116 s standalone).

    code_generation (prompt grows ~660 tokens per turn: 100 -> ~4070 over six turns) <->
    code_execution (container, ~12.3 s); ends after a generation with p 0.4 per turn, at most
    six turns. The turn count is what a PDGraph learns to condition on.
    """
    units = {
        "code_generation": llm_unit(
            uniform(100, 700),
            uniform(120, 480),
            prompt_growth_tokens=660,
            by_visit=loop_law("code_execution", END, stop_p, max_turns),
        ),
        "code_execution": service_unit(
            "container", "container", lognormal(exec_s, 0.2), next_=[to("code_generation")]
        ),
    }
    return app("code_feedback", weight, "code_generation", units, code_feedback.__doc__ or "")


def hugginggpt(weight: float = 13.0, *, dnn: JsonObject | None = None) -> JsonObject:
    """HuggingGPT (row hugginggpt, ~36 s standalone).

    task_planning (llm) -> dnn_execution (model server, 3-59 s, heavy-tailed: bounded Pareto
    alpha 1.1) -> response_results (llm) -> END.
    """
    units = {
        "task_planning": llm_unit(about(1760), uniform(72, 202), next_=[to("dnn_execution")]),
        "dnn_execution": service_unit(
            "dnn", "dnn", dnn or bounded_pareto(1.1, 3.0, 59.0), next_=[to("response_results")]
        ),
        "response_results": llm_unit(uniform(400, 900), uniform(300, 910), next_=[to(END)]),
    }
    return app("hugginggpt", weight, "task_planning", units, hugginggpt.__doc__ or "")


def factool_code(weight: float = 22.0) -> JsonObject:
    """FacTool code checking (row factool_code, ~9 s standalone).

    generate_queries -> generate_solutions (w3) -> code_execution (container, ~1 s) -> END.
    """
    units = {
        "generate_queries": llm_unit(
            uniform(306, 500), uniform(54, 81), next_=[to("generate_solutions")]
        ),
        "generate_solutions": llm_unit(
            uniform(270, 470),
            uniform(140, 305),
            width=int_range(3, 3),
            next_=[to("code_execution")],
        ),
        "code_execution": service_unit(
            "container", "container", lognormal(1.0, 0.3), next_=[to(END)]
        ),
    }
    return app("factool_code", weight, "generate_queries", units, factool_code.__doc__ or "")


def factool_kbqa(weight: float = 22.0) -> JsonObject:
    """FacTool knowledge-base QA (row factool_kbqa, ~11 s standalone).

    extract_claims -> generate_queries (w2-5) -> search (0.9-2.6 s) -> verifies (w2-5) -> END.
    The artifact's verifies stage has the same width as generate_queries; the format draws
    widths independently, so here both are drawn from 2..5 (same law, not the same value).
    """
    units = {
        "extract_claims": llm_unit(about(700), uniform(45, 84), next_=[to("generate_queries")]),
        "generate_queries": llm_unit(
            about(346), uniform(13, 22), width=int_range(2, 5), next_=[to("search")]
        ),
        "search": service_unit("retriever", "search", uniform(0.9, 2.6), next_=[to("verifies")]),
        "verifies": llm_unit(
            uniform(460, 740), uniform(73, 207), width=int_range(2, 5), next_=[to(END)]
        ),
    }
    return app("factool_kbqa", weight, "extract_claims", units, factool_kbqa.__doc__ or "")


def factool_math(weight: float = 3.0) -> JsonObject:
    """FacTool math checking (row factool_math, ~5 s standalone).

    extract_claims -> generate_queries (w2-4) -> END.
    """
    units = {
        "extract_claims": llm_unit(
            uniform(720, 870), uniform(52, 120), next_=[to("generate_queries")]
        ),
        "generate_queries": llm_unit(
            about(240), uniform(21, 39), width=int_range(2, 4), next_=[to(END)]
        ),
    }
    return app("factool_math", weight, "extract_claims", units, factool_math.__doc__ or "")


def react_fever(weight: float = 3.0) -> JsonObject:
    """ReAct on FEVER (row react_fever, ~6 s standalone).

    thought (llm, 1000-1360 tokens: the scratchpad grows ~120 per step) -> search (1.3-2.7 s)
    -> thought ...; ends after a thought with p 0.5, at most eight thoughts.
    """
    units = {
        "thought": llm_unit(
            uniform(1000, 1120),
            uniform(29, 50),
            prompt_growth_tokens=120,
            by_visit=loop_law("search", END, 0.5, 8),
        ),
        "search": service_unit("retriever", "search", uniform(1.3, 2.7), next_=[to("thought")]),
    }
    return app("react_fever", weight, "thought", units, react_fever.__doc__ or "")


def react_alfw(weight: float = 22.0, *, stop_p: float = 0.1, max_steps: int = 40) -> JsonObject:
    """ReAct on ALFWorld (row react_alfw, ~13 s standalone).

    thought (llm, 2130-2410 tokens growing ~10 per step, 4-28 output) repeated; ends with p 0.1
    per step (long loops, mean ~10 steps), at most 40 steps.
    """
    units = {
        "thought": llm_unit(
            uniform(2130, 2200),
            uniform(4, 28),
            prompt_growth_tokens=10,
            by_visit=loop_law("thought", END, stop_p, max_steps),
        ),
    }
    return app("react_alfw", weight, "thought", units, react_alfw.__doc__ or "")


def multiturn_chat(weight: float = 5.0, *, stop_p: float = 0.3, max_turns: int = 10) -> JsonObject:
    """Multi-turn chat (row multiturn_conversations; the artifact ran it separately, so its
    parameters here are ours): each turn's prompt carries the history (+~350 tokens per turn),
    100-400 output tokens; the user leaves after a turn with p 0.3, at most ten turns.
    """
    units = {
        "turn": llm_unit(
            uniform(150, 400),
            uniform(100, 400),
            prompt_growth_tokens=350,
            by_visit=loop_law("turn", END, stop_p, max_turns),
        ),
    }
    return app("multiturn_chat", weight, "turn", units, multiturn_chat.__doc__ or "")


def paper_apps(*, chat_weight: float = 0.0) -> list[JsonObject]:
    """The paper mix (weights sum to 100), plus multi-turn chat when ``chat_weight`` > 0."""
    apps = [
        got_docmerge(1.0),
        langchain_mapreduce(1.0),
        code_feedback(13.0),
        hugginggpt(13.0),
        factool_code(22.0),
        factool_kbqa(22.0),
        factool_math(3.0),
        react_fever(3.0),
        react_alfw(22.0),
    ]
    if chat_weight > 0.0:
        apps.append(multiturn_chat(chat_weight))
    return apps

"""A small traced LLM app, unmodified OTel instrumentation only (run as a subprocess by the e2e).

Branching with a loop: ``plan`` -> (``search`` x 1..3 -> ``answer``) or ``answer`` -> END. Each
step is a manual OTel span (the OTel API) holding one ``openai`` chat call, traced by
``opentelemetry-instrumentation-openai-v2``; spans leave through the OTLP/HTTP protobuf exporter.
Prints the step sequence of every run as JSON (the app's ground truth).
"""

from __future__ import annotations

import argparse
import json
import random

from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

P_SEARCH = 0.6
P_SEARCH_AGAIN = 0.5
MAX_SEARCHES = 3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--traces", required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    provider = TracerProvider(resource=Resource.create({"service.name": "research-bot"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=args.traces, headers=headers))
    )
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("research-bot")
    client = OpenAI(base_url=args.engine, api_key="unused", max_retries=0)
    rng = random.Random(args.seed)
    runs = []

    def step(name: str, tokens: int) -> None:
        with tracer.start_as_current_span(name):
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": f"{name} please"}],
                max_tokens=tokens,
            )

    for _ in range(args.runs):
        seq = ["plan"]
        with tracer.start_as_current_span("research request"):
            step("plan", 3)
            if rng.random() < P_SEARCH:
                step("search", 2)
                seq.append("search")
                while seq.count("search") < MAX_SEARCHES and rng.random() < P_SEARCH_AGAIN:
                    step("search", 2)
                    seq.append("search")
            step("answer", 4)
            seq.append("answer")
        runs.append(seq)
    provider.shutdown()  # flushes every span to the receiver
    print(json.dumps(runs))


if __name__ == "__main__":
    main()

"""The `hermes demo` workload: real LangGraph apps served through the Hermes gateway."""

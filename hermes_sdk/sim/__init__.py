"""Simulation: discrete-event simulator, workloads and a simulated OpenAI-compatible engine."""

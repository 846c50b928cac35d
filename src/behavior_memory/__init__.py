"""behavior-memory: procedural memory for LLM agents."""

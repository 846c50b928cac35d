"""The model behind reflection: an OpenAI-compatible client (sync and async), structured outputs, reasoning."""

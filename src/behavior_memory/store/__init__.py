"""Where behaviors and traces live: the store contract and its back-ends (SQLite, in-memory)."""

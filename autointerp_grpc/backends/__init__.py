"""Heavy, long-lived dependencies: the LLM connection pool and the embedding model."""

"""The embedded default: a tiny model and tokenizer built locally, and a synthetic verifiable task."""

"""The search engine: pure Python, no Qt (a test and an import-linter contract enforce it)."""

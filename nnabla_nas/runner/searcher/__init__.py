"""Searchers: one file per algorithm, each only what differs from the shared loop."""

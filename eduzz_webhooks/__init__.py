"""Receive, verify, store and announce Eduzz webhooks in Django."""

__version__ = "0.1.0"

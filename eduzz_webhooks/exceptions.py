"""Exceptions raised while reading a delivery."""

from __future__ import annotations


class InvalidEnvelope(Exception):
    """The body is not a usable Eduzz envelope (see ``payloads.read_envelope``)."""


class InvalidEventData(Exception):
    """An authentic event's ``data`` can't be used: stored as failed, answered 200."""

"""Exceptions raised while reading a delivery."""

from __future__ import annotations


class InvalidEnvelope(Exception):
    """The body is not an Eduzz envelope: answered with 400, nothing stored."""


class InvalidEventData(Exception):
    """An authentic event's ``data`` can't be used: stored as failed, answered 200."""

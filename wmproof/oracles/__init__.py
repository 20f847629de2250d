"""Oracles: what answers the verifier's queries (see :mod:`wmproof.oracles.base`)."""

from .base import Answers, Oracle

__all__ = ["Answers", "Oracle"]

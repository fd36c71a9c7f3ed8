"""Fixtures of the end-to-end tests: the real SmolLM2 model, imported once per test session."""

from __future__ import annotations

from tests.serving.conftest import smollm2

__all__ = ["smollm2"]

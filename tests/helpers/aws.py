"""The AWS settings every test that talks to a stand-in (moto, the local stack) shares."""

from __future__ import annotations

REGION = "eu-west-1"

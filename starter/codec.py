"""Payload encryption at rest (issue 5 fills this in): the codec every client and worker shares."""

from __future__ import annotations

from temporalio.converter import PayloadCodec


def payload_codec_from_env() -> PayloadCodec | None:
    return None

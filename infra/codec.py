"""Payload encryption at rest: AES-256-GCM with a key id on every payload, so keys can rotate.

Every payload the workflow, its activities and its clients exchange that can
carry customer data (the contact, descriptions, notes: always JSON objects) is
encrypted before it reaches the Temporal server; bare JSON strings (summaries,
current details, action names) stay readable for the web UI. The active key
encrypts; every listed key still decrypts, so rotating is: add a new key, make
it active, keep the old one until no history needs it. Search attributes are
not payloads and stay readable: nothing personal goes into them.

Keys live in a YAML file named by INCIDENTS_CODEC_KEYS_FILE:

    active: k2
    keys:
      k1: <base64 of 32 random bytes>
      k2: <base64 of 32 random bytes>
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from infra.config_files import ConfigFileError, load_yaml
from infra.payloads import mark_undecodable
from infra.private_files import write_private

KEYS_FILE_ENV = "INCIDENTS_CODEC_KEYS_FILE"
ENCODING = b"binary/encrypted"
KEY_ID_HEADER = "encryption-key-id"
NONCE_BYTES = 12


class CodecConfigError(ConfigFileError):
    """A key file that cannot be used; the message names the file and the field."""


class CodecKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str = Field(min_length=1, max_length=64)
    keys: dict[str, bytes]

    @field_validator("keys", mode="before")
    @classmethod
    def _decode(cls, value: object) -> object:
        if not isinstance(value, Mapping) or not value:
            raise ValueError("give at least one key: {id: base64 of 32 bytes}")
        decoded = {}
        for key_id, text in value.items():
            try:
                raw = base64.b64decode(str(text), validate=True)
            except binascii.Error:
                raise ValueError(f"key {key_id!r} is not base64") from None
            if len(raw) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256), got {len(raw)}")
            decoded[str(key_id)] = raw
        return decoded

    @model_validator(mode="after")
    def _active_is_listed(self) -> CodecKeys:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not among the keys {sorted(self.keys)}")
        return self


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: CodecKeys) -> None:
        self._active = keys.active
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    def tolerant(self) -> TolerantEncryptionCodec:
        """The same keys, for a worker: what it cannot open it marks instead of raising."""
        return TolerantEncryptionCodec(self)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        if _is_label(payload):
            return payload
        nonce = secrets.token_bytes(NONCE_BYTES)
        key_id = self._active.encode()
        sealed = self._ciphers[self._active].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID_HEADER: key_id}, data=nonce + sealed)

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on: still readable
        key_id = payload.metadata.get(KEY_ID_HEADER, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ValueError(f"payload encrypted with key {key_id!r}, which is not in {KEYS_FILE_ENV}")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise ValueError(f"payload under key {key_id!r} failed authentication (tampered or wrong key)") from None
        return Payload.FromString(plain)


class TolerantEncryptionCodec(PayloadCodec):
    """A worker's codec: a payload it cannot decrypt is passed on marked, never raised.

    A raising codec fails the workflow task on every attempt (the incident freezes) for a signal any
    client can send with an unknown key id or a different key under the same id.
    """

    def __init__(self, codec: EncryptionCodec) -> None:
        self._codec = codec

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._codec.encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            try:
                decoded.append(self._codec._decrypt(payload))
            except Exception as error:
                decoded.append(mark_undecodable(payload, str(error)))
        return decoded


def _is_label(payload: Payload) -> bool:
    """A payload that is one JSON string: a summary, the UI's current details, an action's name.

    These stay readable so the web UI shows what a timer or activity is for without the codec
    server. Every contract that carries customer data (inputs, actions, state, notifications) is a
    JSON object, and the summaries are built to hold no contact data, so nothing personal is exposed.
    """
    return payload.metadata.get("encoding") == b"json/plain" and payload.data[:1] == b'"'


def load_keys(path: str | Path) -> CodecKeys:
    return load_yaml(path, CodecKeys, what="the key file", error=CodecConfigError)


def write_new_keys(path: str | Path, key_id: str | None = None) -> CodecKeys:
    """A fresh key file (the dev stack writes one under data/ on first start).

    Its key id is unique unless one is given: two files that both called their key `k1` looked like the
    same key to each other, and only the authentication failure told them apart.
    """
    key_id = key_id or f"k-{secrets.token_hex(4)}"
    data = {"active": key_id, "keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()}}
    write_private(path, yaml.safe_dump(data))
    return CodecKeys.model_validate(data)


def payload_codec(keys_file: str | Path | None) -> PayloadCodec | None:
    """The codec for the keys in `keys_file` (the settings' INCIDENTS_CODEC_KEYS_FILE); None: no encryption."""
    return EncryptionCodec(load_keys(keys_file)) if keys_file else None


def payload_codec_from_env(environ: Mapping[str, str]) -> PayloadCodec | None:
    return payload_codec(environ.get(KEYS_FILE_ENV))

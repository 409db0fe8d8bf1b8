"""The codec server: lets the Temporal web UI (and `temporal ... --codec-endpoint`) show decrypted
payloads to an authenticated SRE, and to nobody else.

It speaks Temporal's codec-server protocol: `POST {endpoint}/decode` and
`{endpoint}/encode` with `{"payloads": [...]}` in protobuf JSON. A caller proves
it is an SRE either with `Authorization: Bearer <token>` (the CLI's
`--codec-auth`) or with the token as the last path segment of the endpoint
(`http://host:port/sre/<token>`), which is how the web UI's "codec endpoint"
setting carries it from an SRE's own browser. Tokens are checked against
SHA-256 digests in constant time; nothing is logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from infra.codec import KEYS_FILE_ENV, payload_codec
from infra.settings import Settings
from starter.auth import Role, TokenStore, load_tokens_file

Auth = Annotated[str | None, Header()]


class SreTokens:
    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = [d.lower() for d in digests]

    @classmethod
    def of_plain(cls, *tokens: str) -> SreTokens:
        return cls(hashlib.sha256(t.encode()).hexdigest() for t in tokens)

    def allows(self, token: str | None) -> bool:
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).hexdigest()
        # Check every digest so the time taken does not tell which one nearly matched.
        return any([hmac.compare_digest(digest, known) for known in self._digests])


class Authorizer(Protocol):
    def allows(self, token: str | None) -> bool: ...


class RoleTokens:
    """The API's token file, admitting only one role (`sre`) to the codec server."""

    def __init__(self, store: TokenStore, role: Role = Role.sre) -> None:
        self._store = store
        self._role = role

    def allows(self, token: str | None) -> bool:
        principal = self._store.authenticate(token)
        return principal is not None and principal.role == self._role


def create_codec_app(codec: PayloadCodec, tokens: Authorizer, ui_origins: Sequence[str] = ()) -> FastAPI:
    app = FastAPI(title="Incidents codec server", version="1", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(ui_origins),
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["content-type", "authorization", "x-namespace"],
    )

    def authorize(path_token: str | None, authorization: str | None) -> None:
        bearer = authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None
        if not (tokens.allows(path_token) or tokens.allows(bearer)):
            raise HTTPException(401, "an SRE token is required to decode incident payloads")

    async def parse(request: Request) -> Payloads:
        try:
            return ParseDict(await request.json(), Payloads())
        except (ParseError, ValueError) as error:
            raise HTTPException(400, f"payloads: not Temporal codec JSON ({error})") from None

    async def respond(payloads: Payloads, decode: bool) -> dict[str, Any]:
        try:
            converted = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        return MessageToDict(Payloads(payloads=converted))

    @app.post("/sre/{token}/decode")
    async def decode_with_path_token(token: str, request: Request, authorization: Auth = None) -> dict[str, Any]:
        authorize(token, authorization)
        return await respond(await parse(request), decode=True)

    @app.post("/sre/{token}/encode")
    async def encode_with_path_token(token: str, request: Request, authorization: Auth = None) -> dict[str, Any]:
        authorize(token, authorization)
        return await respond(await parse(request), decode=False)

    @app.post("/decode")
    async def decode(request: Request, authorization: Auth = None) -> dict[str, Any]:
        authorize(None, authorization)
        return await respond(await parse(request), decode=True)

    @app.post("/encode")
    async def encode(request: Request, authorization: Auth = None) -> dict[str, Any]:
        authorize(None, authorization)
        return await respond(await parse(request), decode=False)

    return app


def run(host: str, port: int, settings: Settings, ui_origins: Sequence[str] = ()) -> None:
    """`incidents codec-server`: keys from INCIDENTS_CODEC_KEYS_FILE, SRE tokens from the API token file
    (both from the process's settings)."""
    import uvicorn

    codec = payload_codec(settings.codec_keys_file)
    if codec is None:
        raise SystemExit(f"incidents codec-server: {KEYS_FILE_ENV} is not set; there is nothing to decode")
    app = create_codec_app(codec, RoleTokens(load_tokens_file(settings.api_tokens_file)), ui_origins)
    uvicorn.run(app, host=host, port=port, log_level="warning", log_config=None)

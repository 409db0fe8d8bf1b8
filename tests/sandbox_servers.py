"""Run the sandboxes on real sockets inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from infra.processes import free_port as free_port  # the tests import it from here, beside serve()


@dataclass
class Served:
    url: str
    server: uvicorn.Server


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[Served]:
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        await task

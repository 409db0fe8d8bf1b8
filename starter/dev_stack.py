"""`incidents dev`: the whole local stack in the foreground, from temporal-dev.yml.

Starts the embedded Temporal dev server (SQLite file under the data folder, web
UI, namespace and search attributes) unless a server is configured already,
then the payment and notification sandboxes, the codec server, a worker and
the HTTP API, each a child process in its own process group. Prints where
everything listens and this run's API tokens. Ctrl-C (or SIGTERM) stops them
in reverse order: SIGTERM, then SIGKILL for any that linger. No orphans, even
when this process is killed outright: each child gets SIGTERM from the kernel
then (infra/processes.py).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.codec import KEYS_FILE_ENV
from infra.devconfig import CONFIG_ENV, DevConfig
from infra.processes import (
    Child,
    ChildFailed,
    Interrupted,
    Supervisor,
    http_ok,
    listening,
    port_open,
    temporal_serving,
)
from infra.settings import Settings
from starter.auth import TOKENS_FILE_ENV
from starter.demo import demo_policy_file
from starter.desk.secrets import DEV_SECRET_NAME
from workers.settings import DEV_STACK_ENV

STOP_GRACE_SECONDS = 10.0
READY_SECONDS = 60.0


class StackError(RuntimeError):
    pass


@dataclass
class DevStack:
    config: DevConfig
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(grace=STOP_GRACE_SECONDS))
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    external_temporal: str | None = None
    settings: Settings = field(default_factory=Settings)  # this process's: the environment wins over the file
    keys_file: Path | None = None  # payloads are encrypted with these keys (None: not encrypted)
    tokens_file: Path | None = None  # the API's tokens

    # --- preparing ---

    def environment(self) -> dict[str, str]:
        """What every child gets on top of this process's environment (which it inherits, and which wins in
        its settings as in ours): the temporal-dev.yml to read (the sandboxes, the webhook secret, the log
        format and level come from there), and what the stack decided: which server, key and token files."""
        c, s = self.config, self.settings
        env: dict[str, str] = {CONFIG_ENV: str(c.path)} if c.path else {}
        if self.external_temporal is None:
            # Our own server serves exactly the configured namespace; a stray TEMPORAL_NAMESPACE would
            # point every child at one that does not exist there.
            env["TEMPORAL_ADDRESS"] = c.temporal_address
            env["TEMPORAL_NAMESPACE"] = c.namespace
            self.keys_file = s.codec_keys_file or c.codec_keys_file
        else:
            # The configured server's address, namespace, TLS and API key reach the children as they
            # reached us (environment or temporal.toml profile, read by temporalio.envconfig). It is
            # shared: its payloads need the keys every worker and client of the namespace shares, never
            # a key made up on this laptop. Only an INCIDENTS_CODEC_KEYS_FILE from the environment applies.
            self.keys_file = s.codec_keys_file
        if self.keys_file is not None:
            env[KEYS_FILE_ENV] = str(self.keys_file)
        self.tokens_file = s.api_tokens_file or c.tokens_file
        env[TOKENS_FILE_ENV] = str(self.tokens_file)
        return env

    def prepare(self) -> None:
        from infra.codec import write_new_keys
        from starter.auth import write_dev_credentials, write_dev_tokens

        self.config.data_path.mkdir(parents=True, exist_ok=True)
        if self.keys_file == self.config.codec_keys_file and not self.keys_file.exists():
            write_new_keys(self.keys_file)  # once: the key must outlive restarts, every stored payload needs it
        elif self.keys_file is not None and not self.keys_file.exists():
            raise StackError(f"INCIDENTS_CODEC_KEYS_FILE: {self.keys_file} does not exist")
        if self.tokens_file == self.config.tokens_file:
            issued = write_dev_tokens(self.config.tokens_file)
            # Each dev agent's own token, for `incidents --as ann ...` (mode 0600, beside the token file).
            write_dev_credentials(self.config.tokens_file, issued)
            self.tokens = {name: (role.value, token) for name, (role, token) in issued.items()}

    def plan(self) -> list[Child]:
        c, py = self.config, [sys.executable, "-m", "starter.cli"]
        children: list[Child] = []
        if self.external_temporal is None:
            t = c.temporal
            from infra.binaries import dev_server_argv
            from workflows.search_attributes import batch_operation_flags, dev_server_flags, reported_problems_flags

            children.append(
                Child(
                    "temporal",
                    dev_server_argv(
                        str(c.data_path / t.db_file),
                        t.port,
                        host=t.host,
                        ui_port=t.ui_port,
                        namespace=c.namespace,
                        log_level=t.log_level,
                        sqlite_pragmas=t.sqlite_pragmas.as_flags(),
                        # No --ui-codec-endpoint: it would carry the SRE token on this command line (any
                        # user's `ps`) and the UI hands it to every browser (GET /api/v1/settings). An SRE
                        # sets the endpoint in their own browser's codec setting; the banner prints it.
                        # The audit finds incidents whose workflow task keeps failing by the server's flag.
                        extra=[*dev_server_flags(), *reported_problems_flags(), *batch_operation_flags()],
                    ),
                    temporal_serving(t.host, t.port),
                    f"Temporal {t.host}:{t.port}, web UI http://localhost:{t.ui_port} (log: {c.data_dir}/temporal.log)",
                    log=c.data_path / "temporal.log",
                )
            )
        s = c.sandboxes
        children += [
            Child(
                "payments sandbox",
                [
                    *py,
                    "sandbox",
                    "payments",
                    "--host",
                    s.host,
                    "--port",
                    str(s.payments_port),
                    "--ledger-file",
                    str(c.data_path / "payments-ledger.json"),
                ],
                http_ok(f"http://{s.host}:{s.payments_port}/healthz"),
                f"payment sandbox http://{s.host}:{s.payments_port} (ledger: GET /refunds)",
            ),
            Child(
                "notification sink",
                [*py, "sandbox", "notify", "--host", s.host, "--port", str(s.notify_port)],
                http_ok(f"http://{s.host}:{s.notify_port}/healthz"),
                f"notification sink http://{s.host}:{s.notify_port}/notifications",
            ),
            Child(
                "worker",
                [*py, "worker"],
                listening("127.0.0.1", c.worker.metrics_port),
                f"worker on task queue incidents, metrics http://127.0.0.1:{c.worker.metrics_port}/metrics",
                # Our own server dies beside it: a worker given SIGTERM then retries the vanished server
                # for some 20 s before it exits, holding its metrics port against the next `make run`,
                # and has nothing to finish. A configured server outlives us: there it shuts down cleanly.
                death_signal=signal.SIGKILL if self.external_temporal is None else signal.SIGTERM,
                extra_env={
                    "INCIDENTS_METRICS_PORT": str(c.worker.metrics_port),  # this worker's, not another's
                    # The marker that lets it sign with temporal-dev.yml's public webhook secret: this
                    # stack's sink is the only receiver, and it runs on this machine.
                    DEV_STACK_ENV: "1",
                    # Incidents may also open under the demo's policy (`incidents demo`, and the README's
                    # walkthrough with INCIDENT_POLICY=starter/demo_policy.yml): the worker must know it.
                    "INCIDENT_POLICIES": os.pathsep.join(
                        part for part in (self.settings.more_policy_files, str(demo_policy_file())) if part
                    ),
                    # The link to the customer's ticket page in their "ticket opened" message: this stack's
                    # API, and the desk secret it makes (unless one is named: then the worker reads that one).
                    "INCIDENTS_PUBLIC_URL": self.settings.public_url or f"http://{c.api.host}:{c.api.port}",
                    "INCIDENTS_DESK_SECRET_FILE": str(self.settings.desk_secret_file or c.data_path / DEV_SECRET_NAME),
                },
            ),
            Child(
                "HTTP API",
                [*py, "api", "--host", c.api.host, "--port", str(c.api.port)],
                http_ok(f"http://{c.api.host}:{c.api.port}/healthz"),
                f"HTTP API http://{c.api.host}:{c.api.port} (docs: /docs; the agent desk: /desk)",
            ),
        ]
        if self.keys_file is not None:
            children.insert(-2, self._codec_server())
        return children

    def _codec_server(self) -> Child:
        c, py = self.config, [sys.executable, "-m", "starter.cli"]
        return Child(
            "codec server",
            [
                *py,
                "codec-server",
                "--host",
                c.codec_server.host,
                "--port",
                str(c.codec_server.port),
                "--ui-origin",
                f"http://localhost:{c.temporal.ui_port}",
                "--ui-origin",
                f"http://127.0.0.1:{c.temporal.ui_port}",
            ],
            listening(c.codec_server.host, c.codec_server.port),
            f"codec server http://{c.codec_server.host}:{c.codec_server.port} (SRE token required)",
        )

    def _codec_endpoint_for_ui(self) -> str:
        token = self.tokens.get("dev-sre", ("", ""))[1]
        return f"http://127.0.0.1:{self.config.codec_server.port}/sre/{token}"

    def ports_in_use(self) -> list[str]:
        c = self.config
        wanted = {
            f"api.port {c.api.port}": (c.api.host, c.api.port),
            f"sandboxes.payments_port {c.sandboxes.payments_port}": (c.sandboxes.host, c.sandboxes.payments_port),
            f"sandboxes.notify_port {c.sandboxes.notify_port}": (c.sandboxes.host, c.sandboxes.notify_port),
            f"worker.metrics_port {c.worker.metrics_port}": ("127.0.0.1", c.worker.metrics_port),
        }
        if self.keys_file is not None:
            wanted[f"codec_server.port {c.codec_server.port}"] = (c.codec_server.host, c.codec_server.port)
        if self.external_temporal is None:
            wanted[f"temporal.port {c.temporal.port}"] = (c.temporal.host, c.temporal.port)
            wanted[f"temporal.ui_port {c.temporal.ui_port}"] = (c.temporal.host, c.temporal.ui_port)
        return [name for name, (host, port) in wanted.items() if port_open(host, port)]

    def check_external_temporal(self) -> None:
        """The configured server must answer and know the incidents' search attributes.

        An attribute the namespace does not know makes every incident's workflow task fail and retry
        forever, so add what is missing (allowed on a self-hosted or dev server); where that is refused
        (Temporal Cloud manages them in its console or `tcld`), stop with the list of what to add.
        """
        import asyncio

        asyncio.run(_ensure_search_attributes(self.external_temporal or "?", self.settings))

    # --- running ---

    def start(self, stopping: Callable[[], bool] = lambda: False) -> None:
        env = self.environment()
        self.prepare()
        taken = self.ports_in_use()
        if taken:
            raise StackError(
                f"port already in use: {', '.join(taken)} (change it in {self.config.path} or stop what holds it)"
            )
        if self.external_temporal is not None:
            self.check_external_temporal()
        self.supervisor.extra_env = env
        for child in self.plan():
            self.supervisor.start(child)
            try:
                self.supervisor.wait_ready(child, READY_SECONDS, stopping=stopping)
            except ChildFailed as failed:
                raise StackError(str(failed)) from None

    def stop(self) -> None:
        self.supervisor.stop()

    def banner(self) -> str:
        lines = ["", "incidents dev stack is up:"]
        lines += [f"  - {child.summary}" for child in self.supervisor.children]
        if self.external_temporal:
            lines.append(f"  - Temporal (configured, not started here): {self.external_temporal}")
        lines.append(f"  data folder: {self.config.data_path}")
        if self.tokens:
            lines.append("API tokens for this run (Authorization: Bearer <token>):")
            lines += [f"  {role:<8} {name:<12} {token}" for name, (role, token) in sorted(self.tokens.items())]
            if self.external_temporal is None:
                endpoint = self._codec_endpoint_for_ui()
                lines.append(
                    f"  codec endpoint, for the web UI's codec server setting in an SRE's own browser: {endpoint}"
                )
        if self.keys_file is None:
            lines.append(
                "Payloads are NOT encrypted: set INCIDENTS_CODEC_KEYS_FILE to the key file that every worker and "
                "client of this namespace shares."
            )
        lines.append(
            "Try, in another terminal: .venv/bin/incidents open --customer 42 --category connection_lost "
            "--description 'No internet'  (or .venv/bin/incidents demo; the README walks you through)"
        )
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)


async def _ensure_search_attributes(address: str, settings: Settings) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError

    from infra.connection import connect
    from workflows.search_attributes import ALL_KEYS

    try:
        client = await connect(settings=settings)
    except RuntimeError as error:
        from infra.connection import connection_reason

        raise StackError(f"cannot reach the configured Temporal at {address} ({connection_reason(error)})") from None
    namespace = client.namespace
    try:
        known = (
            await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        ).custom_attributes
    except RPCError as error:
        raise StackError(f"Temporal at {address}, namespace {namespace}: {error.message}") from None
    wanted = {key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in ALL_KEYS}
    wrong = [
        f"{name} is {IndexedValueType.Name(known[name])}, needs {IndexedValueType.Name(kind)}"
        for name, kind in wanted.items()
        if name in known and known[name] != kind
    ]
    if wrong:
        raise StackError(f"namespace {namespace} at {address}: search attribute {'; '.join(wrong)}")
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as error:
        commands = "; ".join(
            f"temporal operator search-attribute create --name {name} --type "
            f"{IndexedValueType.Name(kind).removeprefix('INDEXED_VALUE_TYPE_').title()}"
            for name, kind in missing.items()
        )
        raise StackError(
            f"namespace {namespace} at {address} lacks the search attributes {', '.join(missing)} and refused to "
            f"add them ({error.message}); add them first: {commands}"
        ) from None
    print(f"registered the search attributes {', '.join(missing)} in namespace {namespace}", flush=True)


def run_dev_stack(settings: Settings) -> int:
    """`incidents dev` with the settings the CLI read (temporal-dev.yml: `--config`, INCIDENTS_DEV_CONFIG or found)."""
    from infra.connection import connect_config

    external = connect_config(settings.temporal_address)["target_host"] if settings.external_temporal else None
    stack = DevStack(settings.config, settings=settings, external_temporal=external)
    stop_requested = False

    def request_stop(signum: int, _: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # SIGHUP too: closing the terminal must not leave the children (each in its own session) running.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        stack.start(lambda: stop_requested)
        print(stack.banner(), flush=True)
        died = stack.supervisor.watch(lambda: stop_requested)
        if died is not None:
            unexpected = ChildFailed(died, f"stopped unexpectedly (exit code {died.returncode})")
            print(f"incidents dev: {unexpected}", file=sys.stderr)
            print("incidents dev: stopping the rest", file=sys.stderr)
            return 1
        print("\nstopping...", flush=True)
        return 0
    except StackError as error:
        print(f"incidents dev: {error}", file=sys.stderr)
        return 1
    except Interrupted:
        print("\ninterrupted while starting; stopping...", flush=True)
        return 0
    finally:
        stack.stop()
        print("stopped.", flush=True)

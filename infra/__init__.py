"""What every process of the system shares: the connection to Temporal, the payload codec, logging,
telemetry, process supervision and small helpers. It imports none of the system's layers (workflows,
activities, workers, starter), so any of them may use it; `make test` checks that (import-linter)."""

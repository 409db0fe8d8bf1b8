"""The incident domain: pure, deterministic rules the workflow drives.

Nothing here does I/O at import time or keeps global mutable state, so the
workflow sandbox may pass these modules through instead of re-importing them
for every incident (see TEMPORAL-NOTES: a 30x memory difference).
"""

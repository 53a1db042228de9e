"""Service functions: what the CLI and the API do to the ledger, one transaction each.

Every function is keyword-only, takes ``sessions`` (a sessionmaker from
``workers.runtime.get_runtime().sessions``), writes its audit events in the same transaction,
raises ``models.errors`` classes on bad input, and calls ``tasks.events.desired_state_changed``
only after its transaction committed.
"""

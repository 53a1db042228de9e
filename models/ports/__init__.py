"""What tasks ask of the outside world: Identity Center, the SCIM directory, the runtime.

Interfaces and their records only; the implementations live in ``workers.adapters`` and
``workers.runtime``, so ``tasks`` depends on these and never on ``workers``.
"""

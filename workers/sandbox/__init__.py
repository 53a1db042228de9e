"""The sandbox: a local IAM Identity Center that behaves like AWS (docs/DESIGN.md section 8).

One HTTP endpoint serves the AWS APIs (moto for organizations, iam, identitystore, sts; our
own sso-admin), SCIM 2.0 under ``/scim/v2/`` and a control API under ``/_sandbox/``::

    with Sandbox(settle_delay=0.05, rate=20) as sandbox:
        seeded = sandbox.seed("ops/examples/sandbox-small.yaml")
        sso = sandbox.client("sso-admin")

Modules: ``handle`` (Sandbox, serve_forever), ``server`` (WSGI dispatch), ``sso_admin``
(the JSON API), ``identity_center`` (assignment behaviour), ``limits`` (rate, faults,
counters), ``moto_world`` (organization and identity store), ``fixture`` (YAML seeding),
``control`` (``/_sandbox/``), ``scim`` (the SCIM server).
"""

from workers.sandbox.fixture import Seeded
from workers.sandbox.handle import Sandbox, serve_forever

__all__ = ["Sandbox", "Seeded", "serve_forever"]

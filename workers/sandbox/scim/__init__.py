"""The sandbox's SCIM 2.0 server, speaking AWS Identity Center's dialect over moto's identity store.

``make_scim_app(backend, token=..., identity_store_id=...)`` returns the WSGI app the sandbox
server mounts at ``/scim/v2/``. Modules: ``app`` (WSGI, tokens, throttling), ``dialect``
(AWS's restrictions on top of scim2-server), ``storage`` (moto bridge), ``mapping`` (pure
SCIM <-> identity store translation).
"""

from workers.sandbox.scim.app import AwsScimApplication, ThrottlingException, make_scim_app

__all__ = ["AwsScimApplication", "ThrottlingException", "make_scim_app"]

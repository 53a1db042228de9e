"""The web portal: My access, Request access, Reviews, Access lists, Audit, Status.

Server-rendered (Jinja2 templates and static files shipped in this package), served by the
API's FastAPI app (``workers.portal.app.mount_portal``), signed in through OpenID Connect
(``auth``), with a signed session cookie and CSRF-checked forms (``session``). Every action
calls the same ``tasks`` service functions as the CLI and the API. Why it is built this way:
ops/decisions/portal.md.
"""

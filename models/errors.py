"""Every error grantledger raises on purpose, in one tree.

Each error says what happened (``str(err)``) and what to do next (``err.hint``); the CLI
prints both on stderr and exits with ``err.exit_code``.

    GrantledgerError                 exit 1
    ├── ConfigError                  settings missing, placeholder secret, bad value
    │   └── NotSetUp                 no ledger here at all (nothing enrolled)
    ├── InputError                   exit 2: the caller asked for something malformed
    │   ├── ResourceError            a YAML document is wrong (file, line, field path)
    │   │   ├── UnknownReference     it names a user / role / list that does not exist
    │   │   └── ResourceErrors       several ResourceError at once (all of a file set)
    │   ├── NotFound                 unknown user / role / access list / account / ...
    │   ├── AlreadyExists            duplicate name
    │   ├── CycleError               nested access lists form a cycle
    │   ├── DepthError               nested access lists deeper than the limit
    │   └── PolicyDenied             not requestable, self-review, not an owner, deny rule
    ├── LedgerError                  the ledger refused a write (constraint, migration)
    │   └── SchemaOutOfDate          database is not migrated to head
    ├── AwsError                     an AWS call failed after our retries
    │   ├── AwsThrottled             ThrottlingException / TooManyRequests
    │   ├── AwsConflict              ConflictException (create/delete race)
    │   ├── AwsAccessDenied          AccessDeniedException: names the missing IAM action
    │   ├── AwsNotFound              ResourceNotFoundException (instance, permission set)
    │   ├── AwsUnreachable           endpoint down / DNS / TLS
    │   └── AwsOperationFailed       an async operation ended FAILED (FailureReason kept)
    ├── SlackError                   a Slack Web API call failed (429 keeps Retry-After)
    └── ScimError                    a SCIM call failed
        ├── ScimAuthError            401/403: token expired or revoked
        ├── ScimCircuitOpen          too many auth failures: pushing is paused
        ├── ScimThrottled            429
        ├── ScimConflict             409 that could not be adopted
        ├── ScimNotFound             404: the user or group is gone from the directory
        └── ScimNotOwned             refused: the object's externalId lacks our marker
"""

from __future__ import annotations


class GrantledgerError(Exception):
    """Base of every deliberate grantledger error."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def render(self) -> str:
        """The text shown to a person: the error, then what to do next."""
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(GrantledgerError):
    default_hint = "check the GRANTLEDGER_* environment variables (see README, Configuration)"


class NotSetUp(ConfigError):
    """No ledger here at all: a read command says so instead of creating one."""


class InputError(GrantledgerError):
    """Bad input. ``fields`` names the inputs to fix; each surface words them its own way
    (the CLI as flags, ``--reason``; the API as fields, ``body.reason``)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None,
                 fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.fields = fields


class ResourceError(InputError):
    """One mistake in one YAML document, located as ``file:line field.path: message``."""

    def __init__(
        self, message: str, *, file: str = "<input>", line: int | None = None,
        path: str = "", hint: str | None = None,
    ) -> None:
        self.file, self.line, self.path, self.detail = file, line, path, message
        where = f"{file}:{line}" if line is not None else file
        text = f"{where} {path}: {message}" if path else f"{where}: {message}"
        super().__init__(text, hint=hint)


class UnknownReference(ResourceError):
    """A document names a ``kind`` (user, role, access_list) ``name`` that does not exist."""

    def __init__(self, message: str, *, kind: str, name: str, file: str = "<input>",
                 line: int | None = None, path: str = "", hint: str | None = None) -> None:
        self.kind, self.name = kind, name
        super().__init__(message, file=file, line=line, path=path, hint=hint)


class ResourceErrors(InputError):
    """All the mistakes found in one set of files; nothing was applied."""

    def __init__(self, errors: list[ResourceError], *, outcome: str = "nothing applied",
                 hint: str = "fix the lines above and run the command again") -> None:
        self.errors = errors
        lines = "\n".join(str(e) for e in errors)
        super().__init__(f"{len(errors)} error(s), {outcome}:\n{lines}", hint=hint)

    def validated(self) -> ResourceErrors:
        """The same mistakes as `validate` reports them (it applies nothing anyway)."""
        return ResourceErrors(self.errors, outcome="the files are not valid",
                              hint="fix the lines above, validate again, then apply")


class NotFound(InputError):
    def __init__(self, kind: str, name: str, *, hint: str | None = None) -> None:
        self.kind, self.name = kind, name
        super().__init__(
            f"{kind} {name!r} not found",
            hint=hint or f"list what exists with: grantledger get {kind}s",
        )


class AlreadyExists(InputError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"{kind} {name!r} already exists", hint="choose another name")


class CycleError(InputError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "access lists form a cycle: " + " -> ".join(cycle),
            hint="remove one of these nested memberships",
        )


class DepthError(InputError):
    def __init__(self, chain: list[str], limit: int) -> None:
        self.chain, self.limit = chain, limit
        super().__init__(
            f"access lists nest deeper than {limit}: " + " -> ".join(chain),
            hint="flatten the hierarchy: Identity Center has no nested groups",
        )


class PolicyDenied(InputError):
    default_hint = "see what you may request with: grantledger get requestable --user USER"


class LedgerError(GrantledgerError):
    default_hint = "run: grantledger doctor"


class SchemaOutOfDate(LedgerError):
    default_hint = "run: grantledger db upgrade"


class AwsError(GrantledgerError):
    """An AWS call failed; ``api`` is the operation name, ``code`` AWS's error code."""

    retryable = False

    def __init__(
        self, message: str, *, api: str = "", code: str = "", request_id: str = "",
        hint: str | None = None,
    ) -> None:
        self.api, self.code, self.request_id = api, code, request_id
        super().__init__(message, hint=hint)


class AwsThrottled(AwsError):
    retryable = True
    default_hint = "lower GRANTLEDGER_SSO_ADMIN_RATE or wait; the limiter retries by itself"


class AwsConflict(AwsError):
    retryable = True
    default_hint = "another change to the same assignment is in flight; it is retried"


class AwsAccessDenied(AwsError):
    def __init__(self, message: str, *, api: str = "", action: str = "", **kw: str) -> None:
        self.action = action
        super().__init__(
            message, api=api, hint=f"grant {action} to the integration role "
            "(see: grantledger iam-policy)", **kw,
        )


class AwsNotFound(AwsError):
    default_hint = "check GRANTLEDGER_INSTANCE_ARN / GRANTLEDGER_IDENTITY_STORE_ID"


class AwsUnreachable(AwsError):
    retryable = True
    default_hint = "check GRANTLEDGER_AWS_ENDPOINT_URL, GRANTLEDGER_AWS_REGION and the network"


class AwsOperationFailed(AwsError):
    """An asynchronous assignment operation ended FAILED; ``reason`` is AWS's FailureReason."""

    def __init__(self, reason: str, *, api: str = "", request_id: str = "") -> None:
        self.reason = reason
        super().__init__(f"{api} {request_id} failed: {reason}", api=api,
                         request_id=request_id)


class SlackError(GrantledgerError):
    default_hint = ("check GRANTLEDGER_SLACK_BOT_TOKEN and the app's scopes: "
                    "grantledger slack manifest, then grantledger doctor")

    def __init__(self, message: str, *, retry_after: float | None = None,
                 hint: str | None = None) -> None:
        self.retry_after = retry_after  # seconds Slack asked us to wait (HTTP 429)
        super().__init__(message, hint=hint)


class ScimError(GrantledgerError):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None,
                 hint: str | None = None) -> None:
        self.status = status
        super().__init__(message, hint=hint)


class ScimAuthError(ScimError):
    default_hint = "create a new SCIM token in Identity Center and set GRANTLEDGER_SCIM_TOKEN"


class ScimCircuitOpen(ScimError):
    default_hint = ("SCIM pushes are paused after repeated 401/403; fix the token, then run: "
                    "grantledger doctor")


class ScimThrottled(ScimError):
    retryable = True


class ScimConflict(ScimError):
    pass


class ScimNotFound(ScimError):
    default_hint = "the object was removed outside grantledger; the next sync recreates it"


class ScimNotOwned(ScimError):
    default_hint = ("grantledger only deletes what it created (externalId 'grantledger:...'); "
                    "remove this object in Identity Center yourself if it must go")

"""The sso-admin API (JSON 1.1 protocol, ``X-Amz-Target: SWBExternalService.<Op>``).

Each operation is a small function ``(center, params) -> response dict`` registered in
``OPERATIONS``; :class:`SsoAdminService` adds what AWS does around every call: the shared
token bucket, random throttling on demand, instance checks and AWS-shaped error answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from workers.sandbox.identity_center import (
    CREATE,
    DELETE,
    AssignmentKey,
    IdentityCenter,
    ServiceFault,
)
from workers.sandbox.limits import TokenBucket
from workers.sandbox.moto_world import MANAGEMENT_ACCOUNT_ID

TARGET_PREFIX = "SWBExternalService."
MAX_PAGE = 100  # every sso-admin list API caps MaxResults at 100

Params = dict[str, Any]
Handler = Callable[[IdentityCenter, Params], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register a handler as the sso-admin operation ``name``."""
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler
    return register


# -- helpers -------------------------------------------------------------------------------------

def page(items: list[Any], params: Params, result_key: str) -> dict[str, Any]:
    """One page of ``items`` per MaxResults/NextToken, the way AWS list APIs answer."""
    limit = params.get("MaxResults", MAX_PAGE)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ServiceFault(
            "ValidationException", f"1 validation error detected: Value '{limit}' at "
            f"'maxResults' failed to satisfy constraint: Member must have value less than "
            f"or equal to {MAX_PAGE}")
    start = _offset(params.get("NextToken"))
    answer: dict[str, Any] = {result_key: items[start:start + limit]}
    if start + limit < len(items):
        answer["NextToken"] = base64.urlsafe_b64encode(f"o:{start + limit}".encode()).decode()
    return answer


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        marker, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if marker == "o":
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ServiceFault("ValidationException", "The NextToken is invalid.")


def assignment_key(params: Params) -> AssignmentKey:
    """The shared (principal_type, principal_id, account_id, permission_set_arn) key."""
    if params.get("TargetType") != "AWS_ACCOUNT":
        raise ServiceFault("ValidationException", "TargetType must be AWS_ACCOUNT")
    if params.get("PrincipalType") not in ("USER", "GROUP"):
        raise ServiceFault("ValidationException", "PrincipalType must be USER or GROUP")
    return (params["PrincipalType"], params["PrincipalId"], params["TargetId"],
            params["PermissionSetArn"])


def assignment_row(key: AssignmentKey) -> dict[str, str]:
    """The ``AccountAssignment`` shape of the list APIs."""
    principal_type, principal_id, account_id, permission_set_arn = key
    return {"AccountId": account_id, "PermissionSetArn": permission_set_arn,
            "PrincipalType": principal_type, "PrincipalId": principal_id}


# -- instances and permission sets --------------------------------------------------------------

def instance_shape(center: IdentityCenter) -> dict[str, Any]:
    return {"InstanceArn": center.instance_arn, "IdentityStoreId": center.identity_store_id,
            "OwnerAccountId": MANAGEMENT_ACCOUNT_ID, "Name": "grantledger-sandbox",
            "CreatedDate": center.created_at, "Status": "ACTIVE"}


@operation("ListInstances")
def list_instances(center: IdentityCenter, params: Params) -> dict[str, Any]:
    return page([instance_shape(center)], params, "Instances")


@operation("DescribeInstance")
def describe_instance(center: IdentityCenter, params: Params) -> dict[str, Any]:
    return instance_shape(center)


@operation("CreatePermissionSet")
def create_permission_set(center: IdentityCenter, params: Params) -> dict[str, Any]:
    permission_set = center.create_permission_set(
        name=params["Name"], description=params.get("Description", ""),
        session_duration=params.get("SessionDuration", "PT1H"),
        relay_state=params.get("RelayState", ""))
    return {"PermissionSet": permission_set.describe()}


@operation("DescribePermissionSet")
def describe_permission_set(center: IdentityCenter, params: Params) -> dict[str, Any]:
    return {"PermissionSet": center.permission_set(params["PermissionSetArn"]).describe()}


@operation("ListPermissionSets")
def list_permission_sets(center: IdentityCenter, params: Params) -> dict[str, Any]:
    return page(center.permission_set_arns(), params, "PermissionSets")


@operation("ListPermissionSetsProvisionedToAccount")
def list_provisioned_to_account(center: IdentityCenter, params: Params) -> dict[str, Any]:
    return page(center.provisioned_to(params["AccountId"]), params, "PermissionSets")


@operation("ListAccountsForProvisionedPermissionSet")
def list_accounts_for_provisioned(center: IdentityCenter, params: Params) -> dict[str, Any]:
    accounts = center.accounts_provisioned_with(params["PermissionSetArn"])
    return page(accounts, params, "AccountIds")


@operation("ProvisionPermissionSet")
def provision_permission_set(center: IdentityCenter, params: Params) -> dict[str, Any]:
    target = params.get("TargetId") if params.get("TargetType") == "AWS_ACCOUNT" else None
    record = center.provision(params["PermissionSetArn"], target)
    return {"PermissionSetProvisioningStatus": record.describe(record.created_at)}


@operation("DescribePermissionSetProvisioningStatus")
def describe_provisioning(center: IdentityCenter, params: Params) -> dict[str, Any]:
    status = center.provisioning(params["ProvisionPermissionSetRequestId"])
    return {"PermissionSetProvisioningStatus": status}


# -- account assignments --------------------------------------------------------------------------

@operation("CreateAccountAssignment")
def create_account_assignment(center: IdentityCenter, params: Params) -> dict[str, Any]:
    operation_ = center.submit(CREATE, assignment_key(params))
    return {"AccountAssignmentCreationStatus": _as_submitted(operation_.describe())}


@operation("DeleteAccountAssignment")
def delete_account_assignment(center: IdentityCenter, params: Params) -> dict[str, Any]:
    operation_ = center.submit(DELETE, assignment_key(params))
    return {"AccountAssignmentDeletionStatus": _as_submitted(operation_.describe())}


def _as_submitted(status: dict[str, Any]) -> dict[str, Any]:
    # AWS always answers the call itself with IN_PROGRESS, even when the work is instant.
    submitted = {k: v for k, v in status.items() if k != "FailureReason"}
    return {**submitted, "Status": "IN_PROGRESS"}


@operation("DescribeAccountAssignmentCreationStatus")
def describe_creation(center: IdentityCenter, params: Params) -> dict[str, Any]:
    found = center.operation(CREATE, params["AccountAssignmentCreationRequestId"])
    return {"AccountAssignmentCreationStatus": found.describe()}


@operation("DescribeAccountAssignmentDeletionStatus")
def describe_deletion(center: IdentityCenter, params: Params) -> dict[str, Any]:
    found = center.operation(DELETE, params["AccountAssignmentDeletionRequestId"])
    return {"AccountAssignmentDeletionStatus": found.describe()}


@operation("ListAccountAssignmentCreationStatus")
def list_creation(center: IdentityCenter, params: Params) -> dict[str, Any]:
    status = (params.get("Filter") or {}).get("Status")
    found = [op.summary() for op in center.operations(CREATE, status=status)]
    return page(found, params, "AccountAssignmentsCreationStatus")


@operation("ListAccountAssignmentDeletionStatus")
def list_deletion(center: IdentityCenter, params: Params) -> dict[str, Any]:
    status = (params.get("Filter") or {}).get("Status")
    found = [op.summary() for op in center.operations(DELETE, status=status)]
    return page(found, params, "AccountAssignmentsDeletionStatus")


@operation("ListAccountAssignments")
def list_account_assignments(center: IdentityCenter, params: Params) -> dict[str, Any]:
    keys = center.assignments_on(params["AccountId"], params["PermissionSetArn"])
    return page([assignment_row(k) for k in keys], params, "AccountAssignments")


@operation("ListAccountAssignmentsForPrincipal")
def list_assignments_for_principal(center: IdentityCenter, params: Params) -> dict[str, Any]:
    account_id = (params.get("Filter") or {}).get("AccountId")
    keys = center.assignments_of(params["PrincipalType"], params["PrincipalId"], account_id)
    return page([assignment_row(k) for k in keys], params, "AccountAssignments")


# -- the service around the operations -------------------------------------------------------

class SsoAdminService:
    """Answers one sso-admin request: throttling first, then the operation, AWS-shaped."""

    def __init__(self, center: IdentityCenter, *, bucket: TokenBucket) -> None:
        self.center = center
        self.bucket = bucket

    def answer(self, operation_name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one call of ``operation_name``."""
        try:
            self._admit()
            self._authorize(operation_name)
            handler = OPERATIONS.get(operation_name)
            if handler is None:
                raise ServiceFault("UnknownOperationException",
                                   f"The sandbox does not implement {operation_name}")
            params = json.loads(body or b"{}")
            self._check_instance(params)
            answer = handler(self.center, params)
            faults = self.center.faults
            if faults.answer_delay and operation_name in faults.slow_answers:
                time.sleep(faults.answer_delay)  # the work is done, the answer not sent yet
            return 200, answer
        except ServiceFault as fault:
            return fault.status, {"__type": fault.code, "message": fault.message}
        except (KeyError, TypeError, ValueError) as err:
            return 400, {"__type": "ValidationException", "message": f"bad request: {err}"}

    def _admit(self) -> None:
        if self.center.faults.throttles_now() or not self.bucket.take():
            raise ServiceFault("ThrottlingException", "Rate exceeded")

    def _authorize(self, operation_name: str) -> None:
        # The sandbox takes any credentials; a test names the actions the role lacks.
        if operation_name in self.center.faults.denied:
            raise ServiceFault("AccessDeniedException", "User: arn:aws:sts::"
                               f"{MANAGEMENT_ACCOUNT_ID}:assumed-role/grantledger/sandbox is "
                               f"not authorized to perform: sso:{operation_name}")

    def _check_instance(self, params: Params) -> None:
        arn = params.get("InstanceArn")
        if arn is not None and arn != self.center.instance_arn:
            raise ServiceFault("ResourceNotFoundException", f"Instance {arn} does not exist")


def json_response(status: int, body: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """A JSON 1.1 protocol answer: status line, headers, body."""
    payload = json.dumps(body, default=str).encode()
    headers = [("Content-Type", "application/x-amz-json-1.1"),
               ("Content-Length", str(len(payload))),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
    if status >= 400:
        headers.append(("x-amzn-ErrorType", str(body.get("__type", ""))))
    phrase = {200: "OK", 400: "Bad Request", 409: "Conflict", 501: "Not Implemented"}
    return f"{status} {phrase.get(status, 'Error')}", headers, payload

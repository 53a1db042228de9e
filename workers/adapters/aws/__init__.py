"""AWS IAM Identity Center: the call wrapper, boto3 clients, the adapter and its IAM policy."""

from models.ports.identity_center import (
    AccountRecord,
    AssignmentKey,
    AssignmentRecord,
    GroupRecord,
    IdentityCenter,
    InstanceInfo,
    OperationStatus,
    PermissionSetRecord,
    UserRecord,
)
from workers.adapters.aws.boto_adapter import BotoIdentityCenter
from workers.adapters.aws.clients import AwsClients, make_clients

__all__ = [
    "AccountRecord", "AssignmentKey", "AssignmentRecord", "AwsClients", "BotoIdentityCenter",
    "GroupRecord", "IdentityCenter", "InstanceInfo", "OperationStatus", "PermissionSetRecord",
    "UserRecord", "make_clients",
]

"""The BOLA/BFLA matrix: every RPC of every registered service, called straight
over gRPC by every kind of caller, answers exactly what the role table says.

The RPCs are read from the descriptor set the stack serves, so an RPC added to
a contract fails `test_every_rpc_is_in_the_matrix` until its row is written.
Rows that mutate get a fresh target per call (a member to remove, a device to
retire), so one caller's success cannot change another's answer.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import descriptor_pb2, timestamp_pb2
from google.protobuf.message import Message
from warmhouse.billing.v1 import billing_pb2, billing_pb2_grpc
from warmhouse.device.v1 import device_pb2, device_pb2_grpc
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2_grpc as adapter_pb2_grpc
from warmhouse.heating.v1 import heating_pb2
from warmhouse.notification.v1 import notification_pb2, notification_pb2_grpc
from warmhouse.space.v1 import space_pb2, space_pb2_grpc
from warmhouse.support.v1 import support_pb2, support_pb2_grpc
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.devstack.checkout import DESCRIPTOR_SET
from services.devstack.stack import Stack
from services.registry import SERVICES
from tests.e2e.accounts import PASSWORD, PHONE, login, new_email, register
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.homes import (
    Person,
    add_member,
    admin,
    create_home,
    create_room,
    device_id_in,
    ok,
    person,
    register_device,
)
from tests.e2e.rest import Rest
from tests.grpc_errors import error_reason
from tests.polling import eventually

Code = grpc.StatusCode
OK = Code.OK
UNAUTH = Code.UNAUTHENTICATED
DENIED = Code.PERMISSION_DENIED
HIDDEN = Code.NOT_FOUND
INVALID = Code.INVALID_ARGUMENT
Row = tuple[Code, Code, Code, Code, Code, Code]

# The columns of every row. "stranger" is a USER with no membership of the home;
# "admin" is not a member either: the role ADMIN passes on its own.
CALLERS = ("none", "stranger", "guest", "maintainer", "owner", "admin")

# "Service/Method" or "Service/Method: what differs", to the code each caller gets.
EXPECTED: dict[str, Row] = {
    # columns:                                 none    stranger guest  maint.  owner   admin
    "UserService/CreateUser":                  (OK,     OK,     OK,     OK,     OK,     OK),
    "UserService/Login":                       (OK,     OK,     OK,     OK,     OK,     OK),
    "UserService/RefreshSession":              (OK,     OK,     OK,     OK,     OK,     OK),
    "UserService/Logout":                      (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "UserService/GetJwks":                     (OK,     OK,     OK,     OK,     OK,     OK),
    "UserService/GetUser":                     (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "UserService/GetUser: own profile":        (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "UserService/ListUsers":                   (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "UserService/UpdateUser":                  (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "UserService/DeleteUser":                  (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "UserService/GetUserStatus":               (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "SpaceService/CreateSpace":                (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "SpaceService/CreateSpace: for another":   (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "SpaceService/CreateSpace: room":          (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/GetSpace":                   (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "SpaceService/GetSpace: room":             (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "SpaceService/ListSpaces":                 (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "SpaceService/ListSpaces: by owner":       (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "SpaceService/ListSpaces: another user's": (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "SpaceService/ListSpaces: rooms":          (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "SpaceService/AddSpaceUser":               (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/GetSpaceUser":               (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "SpaceService/ListSpaceUsers":             (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "SpaceService/RemoveSpaceUser":            (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/UpdateSpace":                (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/DeleteSpace":                (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/UpdateSpaceUser":            (UNAUTH, HIDDEN, DENIED, DENIED, OK,     OK),
    "SpaceService/GetSpaceAccess":             (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "DeviceService/RegisterDevice":            (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/RegisterDevice: in a room": (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/GetDevice":                 (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/ListDevices":               (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/UpdateDeviceStatus":        (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/SendCommand":               (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/SendCommand: temperature":  (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/GetCommand":                (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/ListCommands":              (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/ListReadings":              (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/ListDeviceLogs":            (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/AuthenticateDevice":        (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "DeviceService/UpdateDevice":              (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/UpdateDevice: move":        (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/DeleteDevice":              (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/RotateDeviceSecret":        (UNAUTH, HIDDEN, DENIED, OK,     OK,     OK),
    "DeviceService/CountSpaceDevices":         (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "DeviceService/GetHeating":                (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/UpdateDesiredHeating":      (UNAUTH, HIDDEN, OK,     OK,     OK,     OK),
    "DeviceService/UpdateDesiredHeating: mode": (UNAUTH, HIDDEN, DENIED, OK,    OK,     OK),
    "DeviceService/UpdateDesiredHeating: limits": (UNAUTH, HIDDEN, DENIED, OK,  OK,     OK),
    # Hardware's way in: the Hello frame is the credential, a token changes nothing.
    "DeviceAdapterService/Connect":            (OK,     OK,     OK,     OK,     OK,     OK),
    "DeviceAdapterService/SendCommand":        (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "DeviceAdapterService/GetConnection":      (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    # Billing: "owner" is the invoiced user; the others are other users.
    "BillingService/CreateInvoice":            (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "BillingService/IssueInvoice":             (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    "BillingService/GetInvoice":               (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    "BillingService/ListInvoices":             (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "BillingService/ListInvoices: another user's": (UNAUTH, DENIED, DENIED, DENIED, OK, OK),
    "BillingService/CancelInvoice":            (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "BillingService/CreatePayment":            (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     HIDDEN),
    "BillingService/GetPayment":               (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    "BillingService/ListPayments":             (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    "BillingService/GetBalance":               (UNAUTH, DENIED, DENIED, DENIED, OK,     OK),
    "BillingService/TopUpWallet":              (UNAUTH, DENIED, DENIED, DENIED, OK,     DENIED),
    # Public: the signature is the credential, and this one has none.
    "BillingService/ReceiveProviderEvent":     (INVALID,) * 6,
    # Support: "owner" wrote the ticket; the others are other users (ADMIN is staff).
    "SupportService/CreateTicket":             (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "SupportService/CreateTicket: for another": (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    # About the home's device: only a member can name it (the ADMIN's own ticket cannot).
    "SupportService/CreateTicket: about the device": (UNAUTH, HIDDEN, OK, OK,   OK,     HIDDEN),
    "SupportService/GetTicket":                (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    "SupportService/ListTickets":              (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "SupportService/ListTickets: another user's": (UNAUTH, DENIED, DENIED, DENIED, OK,   OK),
    "SupportService/UpdateTicket: close":      (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    "SupportService/UpdateTicket: start work": (UNAUTH, HIDDEN, HIDDEN, HIDDEN, DENIED, OK),
    "SupportService/UpdateTicket: priority":   (UNAUTH, HIDDEN, HIDDEN, HIDDEN, DENIED, OK),
    "SupportService/CreateComment":            (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    # Refused for the caller's role before any ticket is looked up.
    "SupportService/CreateComment: internal":  (UNAUTH, DENIED, DENIED, DENIED, DENIED, OK),
    "SupportService/ListComments":             (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,     OK),
    # Notification: "owner" is the one notified (of their registration).
    "NotificationService/ListNotifications":   (UNAUTH, OK,     OK,     OK,     OK,     OK),
    "NotificationService/ListNotifications: another user's":
                                               (UNAUTH, DENIED, DENIED, DENIED, OK,     OK),
    "NotificationService/MarkNotificationRead": (UNAUTH, HIDDEN, HIDDEN, HIDDEN, OK,    HIDDEN),
    "NotificationService/GetNotificationPreferences": (UNAUTH, DENIED, DENIED, DENIED, OK, OK),
    # Not even an ADMIN changes how someone is told of a gas leak.
    "NotificationService/UpdateNotificationPreferences":
                                               (UNAUTH, DENIED, DENIED, DENIED, OK,     DENIED),
}  # fmt: skip


def rpc_of(case: str) -> str:
    """ "SpaceService/CreateSpace: room" → "SpaceService/CreateSpace"."""
    return case.split(":", 1)[0]


def served_rpcs() -> set[str]:
    """ "Service/Method" of every RPC of every registered service, from the descriptor set."""
    served = {name for spec in SERVICES for name in spec.grpc_services}
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    return {
        f"{service.name}/{method.name}"
        for file in files.file
        for service in file.service
        if f"{file.package}.{service.name}" in served
        for method in service.method
    }


def _short(method_path: str) -> str:
    """ "/warmhouse.user.v1.UserService/GetUserStatus" → "UserService/GetUserStatus"."""
    service, method = method_path.removeprefix("/").split("/")
    return f"{service.rsplit('.', 1)[1]}/{method}"


# Only another service, with its service credential, may call these.
INTERNAL_RPCS = frozenset(_short(path) for spec in SERVICES for path in spec.internal_methods)


# The world every call is made in


@dataclass
class World:
    api: Rest
    people: dict[str, Person]  # every caller but "none"
    home: str
    room: str
    device: str
    # Its secret is never rotated: AuthenticateDevice is refused for the caller, not the secret.
    sealed_device: str
    sealed_secret: str
    # A command sent to `device` by its owner.
    command: str
    # A user who is no caller: the "another user" of the User rows.
    victim: str
    # An account whose sessions the public rows use.
    loginee_email: str
    # An invoice issued to "owner", and a payment they made on it.
    invoice: str
    payment: str
    # The welcome notification "owner" got on registering.
    notification: str = ""
    stubs: dict[str, Any] = field(default_factory=dict)

    def token(self, who: str) -> str | None:
        return None if who == "none" else self.people[who].token

    def user_id(self, who: str) -> str:
        return self.victim if who == "none" else self.people[who].user_id

    def fresh_token(self, who: str) -> str | None:
        """A session of its own, for calls that end one."""
        if who == "none":
            return None
        password = ADMIN_PASSWORD if who == "admin" else PASSWORD
        return str(login(self.api, self.people[who].email, password)["accessToken"])

    def fresh_member(self, role: str = "GUEST") -> str:
        user_id, _ = register(self.api)
        add_member(self.api, self.people["owner"].token, self.home, user_id, role)
        return user_id


@dataclass(frozen=True)
class Call:
    request: Message
    token: str | None


Builder = Callable[[World, str], Call]


def _as_caller(request: Message) -> Builder:
    """The same request, made with the caller's usual token."""
    return lambda world, who: Call(request, world.token(who))


def _create_user(world: World, who: str) -> Call:
    request = user_pb2.CreateUserRequest(email=new_email(), password=PASSWORD, phone=PHONE)
    return Call(request, world.token(who))


def _login(world: World, who: str) -> Call:
    request = user_pb2.LoginRequest(email=world.loginee_email, password=PASSWORD)
    return Call(request, world.token(who))


def _refresh(world: World, who: str) -> Call:
    refresh_token = login(world.api, world.loginee_email)["refreshToken"]
    return Call(user_pb2.RefreshSessionRequest(refresh_token=refresh_token), world.token(who))


def _logout(world: World, who: str) -> Call:
    return Call(user_pb2.LogoutRequest(), world.fresh_token(who))


def _get_user(world: World, who: str) -> Call:
    return Call(user_pb2.GetUserRequest(user_id=world.victim), world.token(who))


def _get_own_user(world: World, who: str) -> Call:
    return Call(user_pb2.GetUserRequest(user_id=world.user_id(who)), world.token(who))


def _update_user(world: World, who: str) -> Call:
    request = user_pb2.UpdateUserRequest(user_id=world.victim, phone="+442071838750")
    return Call(request, world.token(who))


def _delete_user(world: World, who: str) -> Call:
    user_id, _ = register(world.api)
    return Call(user_pb2.DeleteUserRequest(user_id=user_id), world.token(who))


def _user_status(world: World, who: str) -> Call:
    return Call(user_pb2.GetUserStatusRequest(user_id=world.victim), world.token(who))


def _create_home(world: World, who: str) -> Call:
    return Call(space_pb2.CreateSpaceRequest(name="Дом"), world.token(who))


def _create_for_another(world: World, who: str) -> Call:
    request = space_pb2.CreateSpaceRequest(name="Дом", owner_id=world.victim)
    return Call(request, world.token(who))


def _create_room(world: World, who: str) -> Call:
    request = space_pb2.CreateSpaceRequest(name="Комната", parent_space_id=world.home)
    return Call(request, world.token(who))


def _get_space(space: Callable[[World], str]) -> Builder:
    return lambda world, who: Call(
        space_pb2.GetSpaceRequest(space_id=space(world)), world.token(who)
    )


def _list_spaces(**filters: str) -> Builder:
    """`filters` name World attributes holding the filter's value."""

    def build(world: World, who: str) -> Call:
        values = {name: str(getattr(world, attribute)) for name, attribute in filters.items()}
        return Call(space_pb2.ListSpacesRequest(**values), world.token(who))  # type: ignore[arg-type]

    return build


def _add_space_user(world: World, who: str) -> Call:
    user_id, _ = register(world.api)
    request = space_pb2.AddSpaceUserRequest(
        space_id=world.home, user_id=user_id, role=space_pb2.GUEST
    )
    return Call(request, world.token(who))


def _get_space_user(world: World, who: str) -> Call:
    owner = world.people["owner"].user_id
    return Call(space_pb2.GetSpaceUserRequest(space_id=world.home, user_id=owner), world.token(who))


def _list_space_users(world: World, who: str) -> Call:
    return Call(space_pb2.ListSpaceUsersRequest(space_id=world.home), world.token(who))


def _remove_space_user(world: World, who: str) -> Call:
    request = space_pb2.RemoveSpaceUserRequest(space_id=world.home, user_id=world.fresh_member())
    return Call(request, world.token(who))


def _update_space(world: World, who: str) -> Call:
    return Call(space_pb2.UpdateSpaceRequest(space_id=world.home, name="Дача"), world.token(who))


def _delete_space(world: World, who: str) -> Call:
    room = create_room(world.api, world.people["owner"].token, world.home, "Кладовка")
    return Call(space_pb2.DeleteSpaceRequest(space_id=room), world.token(who))


def _update_space_user(world: World, who: str) -> Call:
    request = space_pb2.UpdateSpaceUserRequest(
        space_id=world.home, user_id=world.fresh_member(), role=space_pb2.MAINTAINER
    )
    return Call(request, world.token(who))


def _space_access(world: World, who: str) -> Call:
    request = space_pb2.GetSpaceAccessRequest(space_id=world.home, user_id=world.user_id(who))
    return Call(request, world.token(who))


def _register_device(space: Callable[[World], str]) -> Builder:
    def build(world: World, who: str) -> Call:
        request = device_pb2.RegisterDeviceRequest(
            space_id=space(world), type=device_pb2.SENSOR, name="Датчик"
        )
        return Call(request, world.token(who))

    return build


def _device_request(message: type[Message], **fields: object) -> Builder:
    """A request about the shared device."""

    def build(world: World, who: str) -> Call:
        return Call(message(device_id=world.device, **fields), world.token(who))

    return build


def _update_device(world: World, who: str) -> Call:
    return Call(
        device_pb2.UpdateDeviceRequest(device_id=world.device, name="Котёл"), world.token(who)
    )


def _move_device(world: World, who: str) -> Call:
    """Between the home and its room, so that every successful move is a real one."""
    reply = world.api.call("GET", f"/devices/{world.device}", token=world.people["owner"].token)
    here = reply.body["device"]["spaceId"]
    there = world.room if here == world.home else world.home
    return Call(
        device_pb2.UpdateDeviceRequest(device_id=world.device, space_id=there), world.token(who)
    )


def _delete_device(world: World, who: str) -> Call:
    device_id = device_id_in(world.api, world.people["owner"].token, world.home, "Старый")
    return Call(device_pb2.DeleteDeviceRequest(device_id=device_id), world.token(who))


def _update_heating(**fields: object) -> Builder:
    """A change to a fresh heater, at its first version: only the caller's rights decide."""

    def build(world: World, who: str) -> Call:
        device_id = device_id_in(world.api, world.people["owner"].token, world.room, "Батарея")
        request = device_pb2.UpdateDesiredHeatingRequest(
            device_id=device_id,
            version=1,
            **fields,  # type: ignore[arg-type]
        )
        return Call(request, world.token(who))

    return build


def _issue_invoice(api: Rest, admin_token: str, user_id: str, amount: float = 100.0) -> str:
    body = {
        "userId": user_id,
        "amount": amount,
        "description": "Отопление",
        "dueTime": "2030-01-01T00:00:00Z",
    }
    return str(ok(api.call("POST", "/invoices", body, admin_token))["invoice"]["invoiceId"])


def _owner_invoice(world: World) -> str:
    """A fresh invoice to "owner", for rows that change one."""
    return _issue_invoice(world.api, world.people["admin"].token, world.people["owner"].user_id)


def _pay(api: Rest, token: str, invoice_id: str) -> str:
    body = {"invoiceId": invoice_id, "amount": 1, "method": "CARD", "paymentToken": "tok_visa"}
    return str(ok(api.call("POST", "/payments", body, token))["paymentId"])


def _owner_ticket(world: World) -> str:
    """A fresh ticket of "owner"'s, for rows that change or read one."""
    body = {"subject": "Холодно", "description": "Батарея не греет"}
    reply = world.api.call("POST", "/tickets", body, world.people["owner"].token)
    return str(ok(reply)["ticketId"])


def _support_rows() -> dict[str, Builder]:
    def ticket_call(request: Callable[[str], Message]) -> Builder:
        return lambda world, who: Call(request(_owner_ticket(world)), world.token(who))

    def opened(**fields: Any) -> support_pb2.CreateTicketRequest:
        return support_pb2.CreateTicketRequest(subject="Help", description="Please", **fields)

    return {
        "SupportService/CreateTicket": _as_caller(opened()),
        "SupportService/CreateTicket: for another": lambda world, who: Call(
            opened(user_id=world.people["owner"].user_id if who != "owner" else world.victim),
            world.token(who),
        ),
        "SupportService/CreateTicket: about the device": lambda world, who: Call(
            opened(device_id=world.device), world.token(who)
        ),
        "SupportService/GetTicket": ticket_call(
            lambda ticket: support_pb2.GetTicketRequest(ticket_id=ticket)
        ),
        "SupportService/ListTickets": _as_caller(support_pb2.ListTicketsRequest()),
        "SupportService/ListTickets: another user's": lambda world, who: Call(
            support_pb2.ListTicketsRequest(user_id=world.people["owner"].user_id),
            world.token(who),
        ),
        "SupportService/UpdateTicket: close": ticket_call(
            lambda ticket: support_pb2.UpdateTicketRequest(
                ticket_id=ticket, status=support_pb2.CLOSED
            )
        ),
        "SupportService/UpdateTicket: start work": ticket_call(
            lambda ticket: support_pb2.UpdateTicketRequest(
                ticket_id=ticket, status=support_pb2.IN_PROGRESS
            )
        ),
        "SupportService/UpdateTicket: priority": ticket_call(
            lambda ticket: support_pb2.UpdateTicketRequest(
                ticket_id=ticket, priority=support_pb2.HIGH
            )
        ),
        "SupportService/CreateComment": ticket_call(
            lambda ticket: support_pb2.CreateCommentRequest(ticket_id=ticket, message="Когда?")
        ),
        "SupportService/CreateComment: internal": ticket_call(
            lambda ticket: support_pb2.CreateCommentRequest(
                ticket_id=ticket, message="note", internal=True
            )
        ),
        "SupportService/ListComments": ticket_call(
            lambda ticket: support_pb2.ListCommentsRequest(ticket_id=ticket)
        ),
    }


def _notification_rows() -> dict[str, Builder]:
    def owner_id(world: World) -> str:
        return world.people["owner"].user_id

    return {
        "NotificationService/ListNotifications": _as_caller(
            notification_pb2.ListNotificationsRequest()
        ),
        "NotificationService/ListNotifications: another user's": lambda world, who: Call(
            notification_pb2.ListNotificationsRequest(user_id=owner_id(world)), world.token(who)
        ),
        "NotificationService/MarkNotificationRead": lambda world, who: Call(
            notification_pb2.MarkNotificationReadRequest(notification_id=world.notification),
            world.token(who),
        ),
        "NotificationService/GetNotificationPreferences": lambda world, who: Call(
            notification_pb2.GetNotificationPreferencesRequest(user_id=owner_id(world)),
            world.token(who),
        ),
        "NotificationService/UpdateNotificationPreferences": lambda world, who: Call(
            notification_pb2.UpdateNotificationPreferencesRequest(
                user_id=owner_id(world),
                preferences=notification_pb2.NotificationPreferences(
                    categories=[
                        notification_pb2.CategoryPreference(
                            category=notification_pb2.SAFETY, channels=[notification_pb2.SMS]
                        )
                    ]
                ),
            ),
            world.token(who),
        ),
    }


def _billing_rows() -> dict[str, Builder]:
    def owner_id(world: World) -> str:
        return world.people["owner"].user_id

    return {
        "BillingService/CreateInvoice": lambda world, who: Call(
            billing_pb2.CreateInvoiceRequest(
                user_id=owner_id(world),
                amount=10,
                description="Отопление",
                due_time=timestamp_pb2.Timestamp(seconds=1_900_000_000),
            ),
            world.token(who),
        ),
        "BillingService/IssueInvoice": lambda world, who: Call(
            billing_pb2.IssueInvoiceRequest(
                user_id=owner_id(world),
                amount=10,
                description="Подписка",
                due_time=timestamp_pb2.Timestamp(seconds=1_900_000_000),
            ),
            world.token(who),
        ),
        "BillingService/GetInvoice": lambda world, who: Call(
            billing_pb2.GetInvoiceRequest(invoice_id=world.invoice), world.token(who)
        ),
        "BillingService/ListInvoices": _as_caller(billing_pb2.ListInvoicesRequest()),
        "BillingService/ListInvoices: another user's": lambda world, who: Call(
            billing_pb2.ListInvoicesRequest(user_id=owner_id(world)), world.token(who)
        ),
        "BillingService/CancelInvoice": lambda world, who: Call(
            billing_pb2.CancelInvoiceRequest(invoice_id=_owner_invoice(world)), world.token(who)
        ),
        "BillingService/CreatePayment": lambda world, who: Call(
            billing_pb2.CreatePaymentRequest(
                invoice_id=_owner_invoice(world),
                amount=1,
                method=billing_pb2.CARD,
                payment_token="tok_visa",
            ),
            world.token(who),
        ),
        "BillingService/GetPayment": lambda world, who: Call(
            billing_pb2.GetPaymentRequest(payment_id=world.payment), world.token(who)
        ),
        "BillingService/ListPayments": lambda world, who: Call(
            billing_pb2.ListPaymentsRequest(invoice_id=world.invoice), world.token(who)
        ),
        "BillingService/GetBalance": lambda world, who: Call(
            billing_pb2.GetBalanceRequest(user_id=owner_id(world)), world.token(who)
        ),
        "BillingService/TopUpWallet": lambda world, who: Call(
            billing_pb2.TopUpWalletRequest(
                user_id=owner_id(world), amount=1, method=billing_pb2.CARD, payment_token="tok_visa"
            ),
            world.token(who),
        ),
        "BillingService/ReceiveProviderEvent": lambda world, who: Call(
            billing_pb2.ReceiveProviderEventRequest(event=httpbody_pb2.HttpBody(data=b"{}")),
            world.token(who),
        ),
    }


def _authenticate_device(world: World, who: str) -> Call:
    request = device_pb2.AuthenticateDeviceRequest(
        device_id=world.sealed_device, device_secret=world.sealed_secret
    )
    return Call(request, world.token(who))


def _count_devices(world: World, who: str) -> Call:
    return Call(device_pb2.CountSpaceDevicesRequest(space_id=world.home), world.token(who))


BUILDERS: dict[str, Builder] = {
    "UserService/CreateUser": _create_user,
    "UserService/Login": _login,
    "UserService/RefreshSession": _refresh,
    "UserService/Logout": _logout,
    "UserService/GetJwks": _as_caller(user_pb2.GetJwksRequest()),
    "UserService/GetUser": _get_user,
    "UserService/GetUser: own profile": _get_own_user,
    "UserService/ListUsers": _as_caller(user_pb2.ListUsersRequest()),
    "UserService/UpdateUser": _update_user,
    "UserService/DeleteUser": _delete_user,
    "UserService/GetUserStatus": _user_status,
    "SpaceService/CreateSpace": _create_home,
    "SpaceService/CreateSpace: for another": _create_for_another,
    "SpaceService/CreateSpace: room": _create_room,
    "SpaceService/GetSpace": _get_space(lambda world: world.home),
    "SpaceService/GetSpace: room": _get_space(lambda world: world.room),
    "SpaceService/ListSpaces": _list_spaces(),
    "SpaceService/ListSpaces: by owner": _list_spaces(owner_id="victim"),
    "SpaceService/ListSpaces: another user's": _list_spaces(user_id="victim"),
    "SpaceService/ListSpaces: rooms": _list_spaces(parent_space_id="home"),
    "SpaceService/AddSpaceUser": _add_space_user,
    "SpaceService/GetSpaceUser": _get_space_user,
    "SpaceService/ListSpaceUsers": _list_space_users,
    "SpaceService/RemoveSpaceUser": _remove_space_user,
    "SpaceService/UpdateSpace": _update_space,
    "SpaceService/DeleteSpace": _delete_space,
    "SpaceService/UpdateSpaceUser": _update_space_user,
    "SpaceService/GetSpaceAccess": _space_access,
    "DeviceService/RegisterDevice": _register_device(lambda world: world.home),
    "DeviceService/RegisterDevice: in a room": _register_device(lambda world: world.room),
    "DeviceService/GetDevice": _device_request(device_pb2.GetDeviceRequest),
    "DeviceService/ListDevices": lambda world, who: Call(
        device_pb2.ListDevicesRequest(space_id=world.home), world.token(who)
    ),
    "DeviceService/UpdateDeviceStatus": _device_request(
        device_pb2.UpdateDeviceStatusRequest, status=device_pb2.ERROR
    ),
    "DeviceService/SendCommand": _device_request(
        device_pb2.SendCommandRequest, kind=device_pb2.TURN_ON
    ),
    "DeviceService/SendCommand: temperature": _device_request(
        device_pb2.SendCommandRequest,
        kind=device_pb2.SET_TARGET_TEMPERATURE,
        target_temperature_celsius=20.5,
    ),
    "DeviceService/GetCommand": lambda world, who: Call(
        device_pb2.GetCommandRequest(device_id=world.device, command_id=world.command),
        world.token(who),
    ),
    "DeviceService/ListCommands": _device_request(device_pb2.ListCommandsRequest),
    "DeviceService/ListReadings": _device_request(device_pb2.ListReadingsRequest),
    "DeviceService/ListDeviceLogs": _device_request(device_pb2.ListDeviceLogsRequest),
    "DeviceService/AuthenticateDevice": _authenticate_device,
    "DeviceService/UpdateDevice": _update_device,
    "DeviceService/UpdateDevice: move": _move_device,
    "DeviceService/DeleteDevice": _delete_device,
    "DeviceService/RotateDeviceSecret": _device_request(device_pb2.RotateDeviceSecretRequest),
    "DeviceService/CountSpaceDevices": _count_devices,
    "DeviceService/GetHeating": _device_request(device_pb2.GetHeatingRequest),
    "DeviceService/UpdateDesiredHeating": _update_heating(target_celsius=21.5),
    "DeviceService/UpdateDesiredHeating: mode": _update_heating(mode=heating_pb2.AUTO),
    "DeviceService/UpdateDesiredHeating: limits": _update_heating(
        limits=heating_pb2.HeatingLimits(
            min_target_celsius=10, max_target_celsius=25, frost_floor_celsius=8
        )
    ),
    "DeviceAdapterService/Connect": lambda world, who: Call(
        adapter_pb2.ConnectRequest(
            hello=adapter_pb2.Hello(
                device_id=world.sealed_device, device_secret=world.sealed_secret
            )
        ),
        world.token(who),
    ),
    "DeviceAdapterService/SendCommand": lambda world, who: Call(
        adapter_pb2.SendCommandRequest(
            device_id=world.device,
            command=adapter_pb2.Command(command_id=str(uuid.uuid4()), kind=adapter_pb2.TURN_ON),
        ),
        world.token(who),
    ),
    "DeviceAdapterService/GetConnection": _device_request(adapter_pb2.GetConnectionRequest),
    **_billing_rows(),
    **_support_rows(),
    **_notification_rows(),
}

STUBS: dict[str, Callable[[grpc.aio.Channel], Any]] = {
    "warmhouse.user.v1.UserService": user_pb2_grpc.UserServiceStub,
    "warmhouse.space.v1.SpaceService": space_pb2_grpc.SpaceServiceStub,
    "warmhouse.device.v1.DeviceService": device_pb2_grpc.DeviceServiceStub,
    "warmhouse.device_adapter.v1.DeviceAdapterService": adapter_pb2_grpc.DeviceAdapterServiceStub,
    "warmhouse.billing.v1.BillingService": billing_pb2_grpc.BillingServiceStub,
    "warmhouse.support.v1.SupportService": support_pb2_grpc.SupportServiceStub,
    "warmhouse.notification.v1.NotificationService": (
        notification_pb2_grpc.NotificationServiceStub
    ),
}


@pytest.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    api = Rest(stack.base_url)
    people = {who: person(api) for who in ("stranger", "guest", "maintainer", "owner")}
    people["admin"] = admin(api)
    owner = people["owner"].token
    home = create_home(api, people["owner"])
    room = create_room(api, owner, home)
    add_member(api, owner, home, people["maintainer"].user_id, "MAINTAINER")
    add_member(api, owner, home, people["guest"].user_id, "GUEST")
    sealed = register_device(api, owner, room, "Замок")
    device = device_id_in(api, owner, room)
    _, loginee_email = register(api)
    invoice = _issue_invoice(api, people["admin"].token, people["owner"].user_id)

    def support_knows_the_device() -> bool:
        body = {"subject": "Датчик", "description": "Проверка", "deviceId": device}
        return api.call("POST", "/tickets", body, owner).status == 200

    # Support learns of homes and devices from events: a moment after they exist.
    await eventually(support_knows_the_device, what="Support's copy of the home")

    def welcome() -> str | None:
        body = ok(api.call("GET", "/notifications", token=owner))
        return next((n["notificationId"] for n in body.get("notifications", [])), None)

    notification = await eventually(welcome, what="the owner's welcome notification")
    world = World(
        api=api,
        people=people,
        home=home,
        room=room,
        device=device,
        sealed_device=sealed["device"]["deviceId"],
        sealed_secret=sealed["deviceSecret"],
        command=_a_command(api, owner, device),
        victim=register(api)[0],
        loginee_email=loginee_email,
        invoice=invoice,
        payment=_pay(api, owner, invoice),
        notification=str(notification),
    )
    channels = []
    for spec in SERVICES:
        channel = grpc.aio.insecure_channel(stack.grpc_address(spec.name))
        channels.append(channel)
        for service in spec.grpc_services:
            world.stubs[service.rsplit(".", 1)[1]] = STUBS[service](channel)
    yield world
    for channel in channels:
        await channel.close()


def test_every_rpc_is_in_the_matrix() -> None:
    rpcs = served_rpcs()
    assert len(rpcs) >= 30, "the descriptor set was not read"
    covered = {rpc_of(case) for case in EXPECTED}
    assert not rpcs - covered, (
        f"add these RPCs to EXPECTED (and BUILDERS): {sorted(rpcs - covered)}"
    )
    assert not covered - rpcs, f"no longer served: {sorted(covered - rpcs)}"
    assert set(BUILDERS) == set(EXPECTED)


def test_internal_rpcs_are_refused_to_every_end_user() -> None:
    assert INTERNAL_RPCS, "no internal RPC was found"
    for case, row in EXPECTED.items():
        if rpc_of(case) in INTERNAL_RPCS:
            assert set(row) == {UNAUTH}, case


@pytest.mark.parametrize(
    ("case", "who"),
    [(case, who) for case in EXPECTED for who in CALLERS],
    ids=lambda value: str(value).replace(" ", "_"),
)
async def test_who_may_call_what(world: World, case: str, who: str) -> None:
    expected = EXPECTED[case][CALLERS.index(who)]
    call = BUILDERS[case](world, who)
    service, method = rpc_of(case).split("/")
    metadata = (("authorization", f"Bearer {call.token}"),) if call.token else ()
    code, reason, details = OK, "", ""
    try:
        if isinstance(call.request, adapter_pb2.ConnectRequest):
            await _open_stream(world.stubs[service], call.request, metadata)
        else:
            await getattr(world.stubs[service], method)(call.request, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        code, reason, details = error.code(), error_reason(error), error.details() or ""
    assert code == expected, (case, who, code, reason, details)
    if rpc_of(case) in INTERNAL_RPCS:
        # Refused for want of a service credential, whatever the user's token.
        assert reason == "SERVICE_CREDENTIAL_REQUIRED"


async def _open_stream(
    stub: Any, hello: adapter_pb2.ConnectRequest, metadata: tuple[tuple[str, str], ...]
) -> None:
    """Connect, say Hello and read the Welcome; then hang up."""
    stream = stub.Connect(metadata=metadata)
    try:
        await stream.write(hello)
        welcome = await stream.read()
        assert welcome.HasField("welcome"), welcome
    finally:
        stream.cancel()


def _a_command(api: Rest, owner: str, device_id: str) -> str:
    reply = api.call("POST", f"/devices/{device_id}/command", {"kind": "TURN_ON"}, token=owner)
    assert reply.status == 200, reply
    return str(reply.body["commandId"])

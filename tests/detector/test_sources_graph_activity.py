"""Microsoft Graph activity logs (``MicrosoftGraphActivityLogs``): one Graph API call per
record, in the diagnostic export and as a Log Analytics row. Both were dead letters."""

from __future__ import annotations

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats

SP = "165b6f41-1c79-4d0e-9ec1-090de65c7372"
USER = "7f3c2a10-4b5e-4c6d-8e9f-0a1b2c3d4e5f"
TENANT = "6e1f7a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


def fields(uri: str, *, method: str = "GET", status: int = 200, user: str = "") -> dict:
    return {"requestId": f"r-{method}-{uri}-{status}-{user}", "requestMethod": method,
            "responseStatusCode": status, "tenantId": TENANT, "appId": "99945ba3",
            "servicePrincipalId": SP, "userId": user, "ipAddress": "185.107.56.201",
            "userAgent": "python-requests/2.32.3", "requestUri": uri}


def diagnostic(uri: str, **kw) -> dict:
    return {"time": "2026-11-24T02:20:11.0000000Z", "category": "MicrosoftGraphActivityLogs",
            "operationName": "Microsoft Graph Activity",
            "resourceId": f"/TENANTS/{TENANT}/PROVIDERS/MICROSOFT.AADIAM",
            "callerIpAddress": "185.107.56.201", "properties": fields(uri, **kw)}


def row(uri: str, **kw) -> dict:
    columns = {key[0].upper() + key[1:]: value for key, value in fields(uri, **kw).items()}
    return {"TenantId": TENANT, "TimeGenerated": "2026-11-24T02:20:11.000Z",
            "Type": "MicrosoftGraphActivityLogs", **columns}


def parse(payload: object) -> list:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(payload), origin="t", stats=stats, dead_letters=dead)
    assert len(dead) == 0 and stats.balanced()
    return events


@pytest.mark.parametrize("shape", ["diagnostic", "row"])
def test_an_app_reading_a_mailbox(shape: str) -> None:
    uri = "https://graph.microsoft.com/v1.0/users/ceo@contoso.com/messages?$top=50"
    payload = {"records": [diagnostic(uri)]} if shape == "diagnostic" else [row(uri)]
    [event] = parse(payload)
    assert (event.identity, event.identity_kind, event.principal_type) == (
        SP, "workload", "ServicePrincipal")
    assert event.action == "graph:GET /users/{id}/messages"
    assert event.resource == "/users/ceo@contoso.com/messages"
    assert (event.network_prefix, event.agent_family) == ("185.107.56.0/24",
                                                          "python-requests")
    assert (event.outcome, event.read_only, event.tenant) == ("success", True, TENANT)


def test_ids_leave_the_action_kinds_stay() -> None:
    uris = [f"https://graph.microsoft.com/beta/servicePrincipals/{SP}/addPassword",
            "https://graph.microsoft.com/v1.0/groups/delta",
            "https://graph.microsoft.com/v1.0/applications(appId='99945ba3')"]
    events = parse({"records": [diagnostic(uris[0], method="POST"), diagnostic(uris[1]),
                                diagnostic(uris[2])]})
    assert [e.action for e in events] == [
        "graph:POST /servicePrincipals/{id}/addPassword", "graph:GET /groups/delta",
        "graph:GET /applications({id})"]
    assert events[0].read_only is False


def test_a_delegated_call_is_the_users_and_a_refusal_a_failure() -> None:
    [event] = parse({"records": [diagnostic("https://graph.microsoft.com/v1.0/me",
                                            user=USER, status=403)]})
    assert (event.identity, event.identity_kind) == (USER, "human")
    assert (event.outcome, event.error_code) == ("failure", "403")


@pytest.mark.parametrize(("path", "action"), [
    ("drives/b!-RIj2DuyvEyV1T4NlOaMHk8XkS_I8MdFlUCq1Blcjgm/items/01BYE5RZ6QN3ZWBTUFOFD3GSPGOH/"
     "content", "/drives/{id}/items/{id}/content"),
    ("me/drive/root:/Finance/Q3 payroll.xlsx:/content", "/me/drive/root:{path}:/content"),
    ("me/drive/items/01BYE5RZ6QN3ZWBTUFOF:/sub/a.txt:/content",
     "/me/drive/items/{id}:{path}:/content"),
    ("sites/contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-"
     "93A8-39E1C3A060FE/lists", "/sites/{id}/lists"),
    ("sites/contoso.sharepoint.com:/sites/hr", "/sites/{id}:{path}"),
    ("teams/fbe2bf47-16c8-47cf-b4a5-4b9b187c508b/channels/19:4a95f7d8db4c@thread.tacv2/"
     "messages", "/teams/{id}/channels/{id}/messages"),
    ("users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/mailFolders/Inbox/messages/AAMkAGUAAAwTW09AAA=",
     "/users/{id}/mailFolders/Inbox/messages/{id}"),
    ("users/%7B87d349ed-44d7-43e1-9a83-5f2406dee5bd%7D", "/users/{id}"),
    ("users/John.Doe%40contoso.com/messages", "/users/{id}/messages"),
    ("users/87d349ed44d743e19a835f2406dee5bd", "/users/{id}"),
    ("groups/02bd9fd6-8f93-4758-87c3-1fb73740a315/members/$ref", "/groups/{id}/members/$ref"),
    ("identityProtection/riskyServicePrincipals/microsoft.graph.dismiss",
     "/identityProtection/riskyServicePrincipals/microsoft.graph.dismiss"),
    ("deviceManagement/managedDeviceOverview", "/deviceManagement/managedDeviceOverview"),
])
def test_every_form_of_object_id_leaves_the_action(path: str, action: str) -> None:
    """A backup app reading 40 files a night had a new action per file (OneDrive item
    ids, drive ids, path addresses), so the day it read a mailbox and added a password
    was nothing new: the break-it trial's attack went unseen."""
    [event] = parse({"records": [diagnostic(f"https://graph.microsoft.com/v1.0/{path}")]})
    assert event.action == "graph:GET " + action


def test_over_long_ids_and_paths_keep_their_bounds() -> None:
    record = diagnostic("https://graph.microsoft.com/v1.0/users/" + "a" * 2000 + "/messages")
    record["properties"]["requestId"] = "r" * 5000
    [event] = parse({"records": [record]})
    assert len(event.event_id) <= 256 and len(event.resource) <= 512
    assert event.action == "graph:GET /users/{id}/messages"
    assert event.attributes["cut"] == {"resource": len("/users/" + "a" * 2000 + "/messages")}
    kinds = "/".join(f"kind{n}x" for n in range(60))  # sixty kinds: an action over 256
    [event] = parse({"records": [diagnostic(f"https://g/v1.0/{kinds}")]})
    assert len(event.action) <= 256 and event.action.startswith("graph:GET /kind0x/")
    assert event.attributes["cut"]["action"] == len(f"graph:GET /{kinds}")


def test_a_blank_user_is_no_user_and_an_odd_method_is_unknown() -> None:
    record = diagnostic("https://graph.microsoft.com/v1.0/users", user=" ")
    record["properties"]["requestMethod"] = {"a": 1}
    [event] = parse({"records": [record]})
    assert (event.identity, event.identity_kind) == (SP, "workload")
    assert event.action == "graph:? /users"

"""People: IAM Identity Center (SSO) sessions with e-mails, console and CLI use, kubectl
through OIDC, gcloud. Humans share the SSO permission-set roles; each person has their own
sessions, networks and working hours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import gcp, k8s, world
from .core import DAY, HOUR, Identity, Rng, Session
from .gen import Gen, Sessions, aws_role

FIRST = ["alice", "bruno", "chen", "dana", "emeka", "farah", "goran", "hana", "ivan", "jules",
         "kofi", "lena", "mateo", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tara",
         "uma", "victor", "wen", "yusuf", "zoe"]
LAST = ["martin", "costa", "wei", "kowalski", "okafor", "haddad", "petrovic", "sato", "novak",
        "moreau", "mensah", "fischer", "garcia", "rahman", "aziz", "iyer", "obrien", "silva",
        "lindqvist", "reddy", "nair", "dubois", "liu", "demir", "walsh"]
PERMSETS = {"AdministratorAccess": 0, "PowerUserAccess": 1, "ReadOnlyAccess": 2,
            "DataEngineer": 3}
CONSOLE_READS = ["ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs",
                 "monitoring:DescribeAlarms", "monitoring:GetMetricData",
                 "logs:DescribeLogGroups", "logs:FilterLogEvents", "logs:StartQuery",
                 "ecs:DescribeServices", "ecs:ListTasks", "s3:ListBuckets",
                 "s3:GetBucketPolicy", "lambda:GetFunction20150331v2", "rds:DescribeDBInstances",
                 "iam:GetRole", "iam:ListRoles", "cloudtrail:LookupEvents",
                 "cloudformation:DescribeStacks", "secretsmanager:DescribeSecret"]
ADMIN_WRITES = ["ec2:AuthorizeSecurityGroupIngress", "ecs:UpdateService",
                "autoscaling:SetDesiredCapacity", "ssm:PutParameter", "iam:PutRolePolicy"]
DATA_READS = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
              "glue:GetTable", "s3:ListObjects", "s3:GetObject"]


@dataclass
class Person:
    email: str
    team: str
    tz: int
    nets: list[str]
    ua_browser: str
    ua_cli: str
    aws: list[tuple[str, str]]
    kubectl: bool
    gcloud: bool
    oncall: bool
    first_day: int = 0
    sessions: dict[str, Sessions] = field(default_factory=dict)


def people(g: Gen, count: int) -> list[Person]:
    rng = Rng(f"{g.seed}|people")
    out = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
        team = ("platform", "platform", "backend", "backend", "backend", "data", "security",
                "sre")[i % 8]
        eu = i % 5 == 3
        perms = {"platform": [("prod", "AdministratorAccess"), ("staging", "AdministratorAccess"),
                              ("shared", "AdministratorAccess")],
                 "sre": [("prod", "PowerUserAccess"), ("shared", "ReadOnlyAccess")],
                 "backend": [("staging", "PowerUserAccess"), ("prod", "ReadOnlyAccess")],
                 "data": [("prod", "DataEngineer"), ("staging", "DataEngineer")],
                 "security": [("prod", "ReadOnlyAccess"), ("staging", "ReadOnlyAccess"),
                              ("shared", "ReadOnlyAccess")]}[team]
        out.append(Person(
            email=f"{first}.{last}@{world.EMAIL_DOMAIN}", team=team, tz=1 if eu else -5,
            nets=[rng.choice(world.OFFICE + world.VPN), world.home24(rng)],
            ua_browser=rng.choice(world.BROWSERS),
            ua_cli=world.cli_ua(rng, os_tag="macos#24.1.0", exe="arm64"),
            aws=perms, kubectl=team in ("platform", "sre", "backend"),
            gcloud=team in ("data", "platform"), oncall=team in ("platform", "sre"),
            first_day=20 if i == count - 1 else 0))
    return out


def sso_roles(g: Gen) -> dict[tuple[str, str], Identity]:
    roles: dict[tuple[str, str], Identity] = {}
    for env in world.ACCOUNTS:
        for permset in PERMSETS:
            rng = Rng(f"{g.seed}|sso|{env}|{permset}")
            name = f"AWSReservedSSO_{permset}_{rng.hex(16)}"
            ident, _ = aws_role(g, env, name, "sso_human", kind="human",
                                path="/aws-reserved/sso.amazonaws.com/")
            roles[(env, permset)] = ident
    return roles


def simulate(g: Gen, count: int) -> dict[str, Any]:
    """All human activity; returns handles (people, SSO roles, an act-as helper)."""
    crowd = people(g, count)
    roles = sso_roles(g)
    clusters = world.CLUSTERS["prod"]
    handles = {"people": crowd, "roles": roles}
    for person in crowd:
        rng = Rng(f"{g.seed}|person|{person.email}")
        kube = k8s.oidc_user(g, clusters, person.email, [person.team]) if person.kubectl \
            else None
        for day in range(max(0, person.first_day), g.days):
            if g.is_weekend(g.day_t(day) + 12 * HOUR) and rng.random() > 0.08:
                continue
            if rng.random() < 0.4:
                continue
            for t in _work_sessions(g, rng, day, person):
                _aws_session(g, rng, person, roles, t)
                if kube and rng.random() < 0.35:
                    k8s.human_kubectl(g, kube[0], kube[1], t + rng.uniform(60, 1800),
                                      rng.host(person.nets[0]), rng.choice(world.KUBECTL),
                                      k8s.APPS[:12], person.oncall)
                if person.gcloud and rng.random() < 0.4:
                    _gcloud(g, rng, person, t + rng.uniform(60, 1800))
    return handles


def _work_sessions(g: Gen, rng: Rng, day: int, person: Person) -> list[float]:
    start = g.day_t(day) + (9 - person.tz) * HOUR
    return sorted(start + rng.uniform(0, 9 * HOUR) for _ in range(rng.randint(1, 2)))


def session_for(g: Gen, person: Person, role: Identity) -> Sessions:
    """One SSO session per person, role and working day (session name = e-mail)."""
    key = role.key
    if key not in person.sessions:
        person.sessions[key] = Sessions(g, role, DAY, lambda i, r, t: person.email,
                                        phase=(7 - person.tz) * HOUR, tag=person.email)
    return person.sessions[key]


def _aws_session(g: Gen, rng: Rng, person: Person, roles: dict[tuple[str, str], Identity],
                 t: float) -> None:
    env, permset = rng.choice(person.aws)
    role = roles[(env, permset)]
    sessions = session_for(g, person, role)
    console = rng.random() < 0.6
    ip = rng.host(person.nets[0] if rng.random() < 0.7 else person.nets[1])
    ua = person.ua_browser if console else person.ua_cli
    pool = DATA_READS if permset == "DataEngineer" else CONSOLE_READS
    if console:
        _console_login(g, rng, role, sessions.at(t), t, ip, ua)
        t += rng.uniform(3, 20)
    for _ in range(rng.randint(2, 7)):
        action = rng.choice(pool)
        if permset != "DataEngineer" and rng.random() < 0.04:
            action = rng.choice(ADMIN_WRITES)
        call = g.emit(role, rng, t, action, session=sessions.at(t), ip=ip, ua=ua,
                      region=_region(rng, person, env, action),
                      extra={"bucket": "nw-analytics-curated"} if action.startswith("s3:")
                      else {})
        if call is not None and permset == "ReadOnlyAccess" and action in ADMIN_WRITES:
            call.error = ("AccessDenied", "")
        elif call is not None and console and int(call.eid[:8], 16) % 100 < 15:
            call.ip = call.ua = "AWS Internal"  # the console's backend calling for the user
        t += rng.uniform(2, 120)


def _console_login(g: Gen, rng: Rng, role: Identity, session: Session, t: float, ip: str,
                   ua: str) -> None:
    """The federated console sign-in that opens an SSO console session."""
    call = g.emit(role, rng, t, "signin:ConsoleLogin", session=session, ip=ip, ua=ua,
                  region="us-east-1", response={"ConsoleLogin": "Success"})
    if call is not None:
        call.extra.update(event_type="AwsConsoleSignIn", host="signin.aws.amazon.com",
                          additional={"MobileVersion": "No", "MFAUsed": "No"})


def _region(rng: Rng, person: Person, env: str, action: str) -> str:
    """IAM is global (logged in us-east-1); EU people in prod look at eu-west-1 half the time."""
    if action.startswith("iam:") or env != "prod" or person.tz < 0:
        return "us-east-1"
    return rng.choice(("us-east-1", "eu-west-1"))


def act_as(g: Gen, person: Person, role: Identity, t: float, action: str,
           **extra: Any) -> None:
    rng = Rng(f"{g.seed}|act|{person.email}|{action}|{int(t)}")
    g.emit(role, rng, t, action, session=session_for(g, person, role).at(t),
           ip=rng.host(person.nets[0]), ua=person.ua_browser, region="us-east-1", extra=extra)


def _gcloud(g: Gen, rng: Rng, person: Person, t: float) -> None:
    key = person.email
    if key not in g.identities:
        ident = Identity(key=key, source="gcp", archetype="human_gcloud", kind="human",
                         tenant=world.GCP_PROJECTS["analytics"], name=key)
        g.register(ident)
    ident = g.identities[key]
    ops = [(gcp.BQ_JOB, 4), (gcp.BQ_RES, 3), (gcp.BQ_TABLE, 2), (gcp.ST_LIST, 1),
           (gcp.GET_IAM, 0.3)]
    console = rng.random() < 0.5
    ua = world.GCP_BROWSER_UA if console else world.GCLOUD_UA.format(
        "bq.query", rng.hex(32), "MACOSX")
    for _ in range(rng.randint(2, 10)):
        gcp.emit_gcp(g, ident, rng, t, rng.weighted(ops), ip=rng.host(person.nets[0]), ua=ua,
                     project=rng.choice(list(world.GCP_PROJECTS.values())))
        t += rng.uniform(5, 200)

"""AWS machine-identity archetypes: each function registers one identity and simulates its
whole history (its rhythm, API set, networks, user agent and credential churn).

Every function returns an ``Actor`` so the attack scenarios can act as that identity later
(with its live session, its usual networks, or deliberately not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import world
from .core import DAY, HOUR, MINUTE, Identity, Rng, Session, weekday
from .gen import Gen, Sessions, aws_role, aws_user, business_weight, expand, fixed_key, \
    periodic_times, poisson_times, rare_errors, run_calls, service_assume_role, \
    traffic_weight, web_identity_assume

VPCE_SERVICES = ("s3", "kms", "ssm", "secretsmanager", "logs", "ecr")


@dataclass
class Actor:
    ident: Identity
    rng: Rng
    sessions: Sessions | None = None
    ips: list[str] = field(default_factory=list)
    ua: str = ""
    key: Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ip(self, rng: Rng) -> str:
        return rng.host(rng.choice(self.ips))

    def ip_for(self, session: Session | None) -> str:
        """The one address a session calls from: a task, a function instance or an agent
        process sits behind one NAT gateway for its whole life."""
        key = session.key_id if session and session.key_id else ""
        found = self.extra.setdefault("_ips", {}).get(key)
        if found is None:
            rng = Rng(f"{self.ident.key}|ip|{key}")
            found = self.extra["_ips"][key] = rng.host(rng.choice(self.ips))
        return found


def _task_id(idx: int, rng: Rng, t: float) -> str:
    return rng.hex(32)


def _weighted_actions(rng: Rng, weights: list[tuple[str, float]], n: int) -> list[str]:
    return [rng.weighted(weights) for _ in range(n)]


def _vpce_kw(g: Gen, actor: Actor, action: str, instance: str, private24: str
             ) -> dict[str, Any]:
    """Route an instance's AWS-service calls through interface endpoints (from its private
    address), the rest through its subnet's NAT gateway."""
    svc = action.partition(":")[0]
    env = actor.ident.res["env"]
    rng = Rng(f"{actor.ident.key}|{instance}")
    private, nat = rng.host(private24), rng.choice(actor.ips)
    if svc in VPCE_SERVICES and env in g.vpce:
        return {"ip": private, "extra": {"vpce": g.vpce[env][svc]}}
    return {"ip": nat}


# --- pollers and scheduled jobs ------------------------------------------------------------

def poller(g: Gen, env: str, name: str, period: float, actions: list[str],
           ua_kind: str = "boto3", **res: Any) -> Actor:
    """An ECS service polling the same APIs every ``period`` seconds."""
    ident, rng = aws_role(g, env, name, "poller", **res)
    actor = Actor(ident, rng, ips=g.nat[env], ua=_ua(rng, ua_kind, actions[0]))
    actor.sessions = Sessions(g, ident, rng.uniform(1.5, 4.0) * DAY, _task_id,
                              mint=service_assume_role(g, ident, "ecs-tasks.amazonaws.com"),
                              phase=rng.uniform(0, DAY))
    phase = rng.uniform(0, period)
    errors = rare_errors(0.003)
    for day in g.day_range(ident):
        for t in periodic_times(g, rng, day, period, phase, 15.0):
            s = actor.sessions.at(t)
            run_calls(g, ident, rng, t, actions, gap=(0.1, 1.5), errors=errors,
                      session=s, ip=actor.ip_for(s), ua=actor.ua, region=ident.region)
    return actor


def scheduled_job(g: Gen, env: str, name: str, template: list[tuple[str, Any]], hour: int,
                  minute: int, weekdays: tuple[int, ...] | None = None,
                  ua_kind: str = "boto3", bursts: dict[int, float] | None = None,
                  **res: Any) -> Actor:
    """A nightly (or weekly) ECS scheduled task: one new session per run, fixed start time.

    ``weekdays`` (Monday = 0) limits the runs to those days; ``bursts`` maps a day to a
    multiplier of the run's size (a maintenance burst).
    """
    ident, rng = aws_role(g, env, name, "scheduled_job", **res)
    actor = Actor(ident, rng, ips=g.nat[env], ua=_ua(rng, ua_kind, template[0][0]))
    actor.sessions = Sessions(g, ident, DAY, _task_id,
                              mint=service_assume_role(g, ident, "ecs-tasks.amazonaws.com"),
                              phase=hour * HOUR + minute * MINUTE - 120)
    errors = rare_errors(0.01)
    for day in g.day_range(ident):
        t = g.day_t(day) + hour * HOUR + minute * MINUTE + rng.uniform(0, 90)
        if weekdays is not None and weekday(g.start, t) not in weekdays:
            continue
        actions = expand(rng, template)
        factor = (bursts or {}).get(day, 1.0)
        if factor != 1.0:
            actions = actions * int(factor)
        s = actor.sessions.at(t)
        run_calls(g, ident, rng, t, actions, gap=(0.3, 6.0), errors=errors,
                  session=s, ip=actor.ip_for(s), ua=actor.ua, region=ident.region)
    return actor


def _ua(rng: Rng, kind: str, action: str) -> str:
    svc = action.partition(":")[0]
    if kind == "java":
        return world.java_ua(rng)
    if kind == "node":
        return world.node_ua(rng, svc)
    if kind == "go":
        return world.go_v2_ua(svc)
    if kind == "cli":
        return world.cli_ua(rng, os_tag="linux#5.10.227-219.884.amzn2.x86_64",
                            exe="x86_64.amzn.2")
    return world.boto3_ua(rng)


# --- Lambda functions ----------------------------------------------------------------------

def lambda_fn(g: Gen, env: str, name: str, weights: list[tuple[str, float]],
              per_hour: float, init: list[str] | None = None, runtime: str = "python3.12",
              shape: str = "traffic", added: tuple[int, str] | None = None,
              **res: Any) -> Actor:
    """A Lambda function's execution role: a new session at every cold start.

    ``added`` = (day, action): a deploy on that day adds one API to the function's set.
    """
    region = res.get("region", world.HOME_REGION)
    ident, rng = aws_role(g, env, name + "-role", "lambda", function=name, **res)
    ua = world.node_ua(rng, weights[0][0].partition(":")[0]) if runtime.startswith("node") \
        else world.boto3_ua(rng, lambda_rt=runtime)
    nets = [world.aws_public24(rng, region) for _ in range(rng.randint(2, 3))]
    actor = Actor(ident, rng, ips=nets, ua=ua)
    actor.sessions = Sessions(g, ident, rng.uniform(4.0, 12.0) * HOUR, lambda i, r, t: name,
                              mint=service_assume_role(g, ident, "lambda.amazonaws.com"),
                              phase=rng.uniform(0, HOUR))
    weight = {"traffic": traffic_weight, "business": business_weight}.get(shape)
    seen: set[str] = set()
    errors = rare_errors(0.002)
    for day in g.day_range(ident):
        acts = list(weights)
        if added and day >= added[0]:
            acts.append((added[1], 0.3))
        for t in poisson_times(g, rng, day, per_hour, weight):
            s = actor.sessions.at(t)
            if s.key_id not in seen:
                seen.add(s.key_id)
                run_calls(g, ident, rng, t, init or [], gap=(0.05, 0.4), session=s,
                          ip=actor.ip_for(s), ua=ua, region=region)
                t += 1.0
            run_calls(g, ident, rng, t, _weighted_actions(rng, acts, 1), errors=errors,
                      session=s, ip=actor.ip_for(s), ua=ua, region=region)
    return actor


# --- EC2 instance roles ----------------------------------------------------------------------

def ec2_role(g: Gen, env: str, name: str, weights: list[tuple[str, float]], per_hour: float,
             instances: int = 2, life_days: tuple[float, float] = (2.0, 9.0),
             delivery: str = "2.0", asg_slr: Actor | None = None, **res: Any) -> Actor:
    """An Auto Scaling group's instance profile: instances come and go, each instance's
    credentials rotate every six hours, calls go through VPC endpoints or the NAT."""
    ident, rng = aws_role(g, env, name, "ec2_instance_role", **res)
    actor = Actor(ident, rng, ips=g.nat[env if env in g.nat else "prod"],
                  ua=world.boto3_ua(rng))
    actor.extra["slots"] = []
    for slot in range(instances):
        plan = _instance_plan(g, rng, life_days, asg_slr)
        subnet = world.private24(rng, env)
        sessions = Sessions(g, ident, 6 * HOUR, _instance_namer(plan),
                            mint=service_assume_role(g, ident, "ec2.amazonaws.com"),
                            ec2_delivery=delivery, phase=rng.uniform(0, 6 * HOUR),
                            tag=f"slot{slot}-")
        actor.extra["slots"].append((sessions, subnet, plan))
        _ec2_slot(g, actor, sessions, subnet, weights, per_hour, slot)
    actor.sessions = actor.extra["slots"][0][0]
    return actor


def _instance_plan(g: Gen, rng: Rng, life: tuple[float, float],
                   asg_slr: Actor | None) -> list[tuple[float, str]]:
    """(launch time, instance id) pairs; the ASG service role launches/terminates them."""
    plan: list[tuple[float, str]] = []
    t = g.start - rng.uniform(0, life[1]) * DAY
    while t < g.end:
        iid = f"i-0{rng.hex(16)}"
        plan.append((t, iid))
        if asg_slr is not None and plan[:-1]:
            _asg_replace(g, asg_slr, t, plan[-2][1], iid)
        t += rng.uniform(*life) * DAY
    return plan


def _instance_namer(plan: list[tuple[float, str]]) -> Callable[[int, Rng, float], str]:
    def name(idx: int, rng: Rng, t: float) -> str:
        current = plan[0][1]
        for launched, iid in plan:
            if launched <= t:
                current = iid
        return current
    return name


def _asg_replace(g: Gen, slr: Actor, t: float, old: str, new: str) -> None:
    rng, ident = slr.rng, slr.ident
    svc = "autoscaling.amazonaws.com"
    kw = {"session": slr.sessions.at(t) if slr.sessions else None, "ip": svc, "ua": svc,
          "region": ident.region}
    g.emit(ident, rng, t, "ec2:RunInstances", extra={"invoked_by": svc, "instance_id": new},
           **kw)
    g.emit(ident, rng, t + rng.uniform(120, 400), "ec2:TerminateInstances",
           extra={"invoked_by": svc, "instance_id": old}, **kw)


def _ec2_slot(g: Gen, actor: Actor, sessions: Sessions, subnet: str,
              weights: list[tuple[str, float]], per_hour: float, slot: int) -> None:
    ident, rng = actor.ident, actor.rng
    errors = rare_errors(0.002)
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, per_hour, traffic_weight):
            action = rng.weighted(weights)
            session = sessions.at(t)
            g.emit(ident, rng, t, action, session=session, ua=actor.ua,
                   region=ident.region, error=errors(action, rng),
                   **_vpce_kw(g, actor, action, session.name or "", subnet))


# --- CI/CD roles assumed with GitHub's OIDC tokens -----------------------------------------

CI_TEMPLATES: dict[str, list[tuple[str, Any]]] = {
    "ecs": [("ecr:GetAuthorizationToken", 1), ("ecr:BatchCheckLayerAvailability", (1, 2)),
            ("ecr:InitiateLayerUpload", (0, 2)), ("ecr:UploadLayerPart", (0, 2)),
            ("ecr:CompleteLayerUpload", (0, 2)), ("ecr:PutImage", 1),
            ("ecs:DescribeTaskDefinition", 1), ("ecs:RegisterTaskDefinition", 1),
            ("ecs:UpdateService", 1), ("ecs:DescribeServices", (1, 3))],
    "lambda": [("lambda:GetFunction20150331v2", 1), ("lambda:UpdateFunctionCode20150331v2", 1),
               ("lambda:GetFunctionConfiguration20150331v2", (1, 3)),
               ("lambda:PublishVersion20150331", 1), ("lambda:UpdateAlias20150331", 1)],
    "static": [("s3:ListObjects", 1), ("s3:PutObject", (3, 9)),
               ("cloudfront:CreateInvalidation", 1)],
    "cfn": [("cloudformation:DescribeStacks", 1), ("cloudformation:CreateChangeSet", 1),
            ("cloudformation:DescribeChangeSet", (1, 3)),
            ("cloudformation:ExecuteChangeSet", 1), ("cloudformation:DescribeStackEvents", (2, 5)),
            ("cloudformation:DescribeStacks", (1, 3))],
}
CI_COMMANDS = {"ecr": "ecr.get-login-password", "ecs": "ecs.update-service",
               "lambda": "lambda.update-function-code", "s3": "s3.sync",
               "cloudfront": "cloudfront.create-invalidation",
               "cloudformation": "cloudformation.deploy"}


def ci_role(g: Gen, env: str, name: str, repo: str, kind: str, runs_per_day: float,
            branch: str = "main", **res: Any) -> Actor:
    """A deploy role assumed by GitHub Actions (one ``gh-run-<n>`` session per run)."""
    ident, rng = aws_role(g, env, name, "ci_deploy", **res)
    actor = Actor(ident, rng, ips=g.gh_pool, ua=world.GHA_STS_UA)
    subject = f"repo:{world.GITHUB_ORG}/{repo}:ref:refs/heads/{branch}" if env == "prod" else \
        f"repo:{world.GITHUB_ORG}/{repo}:environment:{env}"
    actor.extra.update(subject=subject, kind=kind)
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, runs_per_day / 11.0, business_weight):
            ci_run(g, actor, t, expand(rng, CI_TEMPLATES[kind]))
    return actor


def ci_run(g: Gen, actor: Actor, t: float, actions: list[str],
           errors: Callable[[str, Rng], Any] | None = None) -> Session:
    ident, rng = actor.ident, actor.rng
    run_id = 11_400_000_000 + int((t - g.start) / 60) * 97 + rng.randint(0, 96)
    session = Session(name=f"gh-run-{run_id}", key_id="ASIA" + rng.b32(16), created=t)
    ip = actor.ip(rng)
    session.extra["ip"] = ip
    mint = web_identity_assume(g, ident, "token.actions.githubusercontent.com",
                               actor.extra["subject"], lambda r, s: ip, world.GHA_STS_UA)
    mint(session, rng)
    t += rng.uniform(20, 90)
    cli = world.cli_ua(rng)
    for action in actions:
        svc = action.partition(":")[0]
        ua = cli.replace("prompt/off", f"prompt/off command/{CI_COMMANDS.get(svc, 'sts')}")
        g.emit(ident, rng, t, action, session=session, ip=ip, ua=ua, region=ident.region,
               error=errors(action, rng) if errors else None)
        t += rng.uniform(1, 25)
    return session


# --- IRSA roles of Kubernetes operators -------------------------------------------------------

def irsa_role(g: Gen, env: str, name: str, sa: str, weights: list[tuple[str, float]],
              per_hour: float, ua: str, session_style: str = "go", **res: Any) -> Actor:
    """An EKS pod's IAM role (IRSA): ``AssumeRoleWithWebIdentity`` about every hour."""
    ident, rng = aws_role(g, env, name, "k8s_irsa", **res)
    actor = Actor(ident, rng, ips=g.nat[env], ua=ua)

    def namer(idx: int, r: Rng, t: float) -> str:
        if session_style == "go":
            return f"aws-go-sdk-{int(t * 1e9)}"
        return f"botocore-session-{int(t)}"
    provider = g.oidc_eks[env]
    actor.sessions = Sessions(g, ident, HOUR, namer, phase=rng.uniform(0, HOUR))
    actor.sessions.mint = web_identity_assume(g, ident, provider, sa,
                                              lambda r, s: actor.ip_for(s), ua)
    errors = rare_errors(0.004)
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, per_hour):
            action = rng.weighted(weights)
            s = actor.sessions.at(t)
            g.emit(ident, rng, t, action, session=s, ip=actor.ip_for(s), ua=ua,
                   region=ident.region, error=errors(action, rng))
    return actor


# --- data pipelines, AI agents, long-term keys, service-linked roles -------------------------

def data_pipeline(g: Gen, env: str, name: str, hour: int, gets: tuple[int, int],
                  puts: tuple[int, int], src_bucket: str, dst_bucket: str,
                  **res: Any) -> Actor:
    """A nightly ETL job: lists and reads a day of objects, writes curated output."""
    ident, rng = aws_role(g, env, name, "data_pipeline", **res)
    actor = Actor(ident, rng, ips=g.nat[env], ua=world.boto3_ua(rng))
    actor.sessions = Sessions(g, ident, DAY, _task_id,
                              mint=service_assume_role(g, ident, "ecs-tasks.amazonaws.com"),
                              phase=hour * HOUR - 300)
    for day in g.day_range(ident):
        t = g.day_t(day) + hour * HOUR + rng.uniform(0, 240)
        s = actor.sessions.at(t)
        kw = {"session": s, "ip": actor.ip_for(s), "ua": actor.ua, "region": ident.region}
        t = run_calls(g, ident, rng, t, ["glue:GetTable", "s3:ListObjects", "s3:ListObjects"],
                      extra={"bucket": src_bucket}, **kw)
        t = run_calls(g, ident, rng, t, ["s3:GetObject"] * rng.randint(*gets), gap=(0.2, 3.0),
                      extra={"bucket": src_bucket}, **kw)
        t = run_calls(g, ident, rng, t, ["s3:PutObject"] * rng.randint(*puts), gap=(0.5, 4.0),
                      extra={"bucket": dst_bucket, "prefix": "curated"}, **kw)
        run_calls(g, ident, rng, t, ["glue:BatchCreatePartition", "athena:StartQueryExecution"],
                  **kw)
    return actor


def ai_agent(g: Gen, env: str, name: str, ua: str, weights: list[tuple[str, float]],
             per_hour: float, turns: tuple[int, int] = (1, 3), **res: Any) -> Actor:
    """An LLM agent's role: conversations of model calls interleaved with tool calls."""
    ident, rng = aws_role(g, env, name, "ai_agent", **res)
    actor = Actor(ident, rng, ips=g.nat[env], ua=ua)
    actor.sessions = Sessions(g, ident, HOUR, _task_id,
                              mint=service_assume_role(g, ident, "ecs-tasks.amazonaws.com"),
                              phase=rng.uniform(0, HOUR))
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, per_hour, business_weight):
            actions: list[str] = []
            for _ in range(rng.randint(*turns)):
                actions += ["bedrock:InvokeModel", rng.weighted(weights)]
            actions.append("bedrock:InvokeModel")
            s = actor.sessions.at(t)
            run_calls(g, ident, rng, t, actions, gap=(1.0, 12.0), session=s,
                      ip=actor.ip_for(s), ua=ua, region=ident.region)
    return actor


def legacy_user(g: Gen, env: str, name: str, nets: list[str], ua: str,
                weights: list[tuple[str, float]], per_hour: float, shape: str = "flat",
                rotate: tuple[int, int, int] | None = None, **res: Any) -> Actor:
    """An IAM user with a long-term ``AKIA`` key used by an on-prem or SaaS integration.

    ``rotate`` = (day, hour, switch_after_minutes): the key is replaced that day.
    """
    ident, rng = aws_user(g, env, name, "iam_user_key", **res)
    actor = Actor(ident, rng, ips=nets, ua=ua, key=fixed_key(rng, g.start - 400 * DAY))
    new_key = fixed_key(rng, g.start)
    actor.extra["old_key"], actor.extra["new_key"] = actor.key, new_key
    switch = g.day_t(rotate[0]) + rotate[1] * HOUR + rotate[2] * MINUTE if rotate else 1e18
    weight = business_weight if shape == "business" else None
    errors = rare_errors(0.004)
    egress = [rng.host(net) for net in nets]
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, per_hour, weight):
            action = rng.weighted(weights)
            ip = egress[0] if rng.random() < 0.97 or len(egress) == 1 else rng.choice(egress)
            g.emit(ident, rng, t, action, session=actor.key if t < switch else new_key,
                   ip=ip, ua=ua, region=ident.region, error=errors(action, rng))
    return actor


def service_linked(g: Gen, env: str, service: str, role: str, session_name: str,
                   weights: list[tuple[str, float]], per_hour: float) -> Actor:
    """A service-linked role used by an AWS service on the account's behalf."""
    ident, rng = aws_role(g, env, role, "service_linked_role",
                          path=f"/aws-service-role/{service}/")
    actor = Actor(ident, rng, ips=[service], ua=service)
    actor.sessions = Sessions(g, ident, 12 * HOUR, lambda i, r, t: session_name,
                              phase=rng.uniform(0, HOUR))
    for day in g.day_range(ident):
        for t in poisson_times(g, rng, day, per_hour):
            g.emit(ident, rng, t, rng.weighted(weights), session=actor.sessions.at(t),
                   ip=service, ua=service, region=ident.region,
                   extra={"invoked_by": service})
    return actor

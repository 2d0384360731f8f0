"""GCP Cloud Audit Logs: service-account archetypes and the LogEntry renderer
(``protoPayload`` AuditLog with ``authenticationInfo``, impersonation through
``serviceAccountDelegationInfo`` and key authentication through ``serviceAccountKeyName``).

A GCP call's ``action`` is ``"<serviceName>:<methodName>"``; ``extra`` may carry
``resource_name``, ``delegation`` (first-party principals), ``key_name``, ``code``,
``request``/``response``/``metadata`` payloads.
"""

from __future__ import annotations

from typing import Any

from . import world
from .core import HOUR, Call, Identity, Rng, iso_ns
from .gen import Gen, business_weight, poisson_times

# service, then each method with its permission, log (A = activity, D = data_access)
# and monitored-resource type on the next line.
_METHOD_TABLE = """
storage.googleapis.com
  storage.objects.get
    storage.objects.get D gcs_bucket
  storage.objects.list
    storage.objects.list D gcs_bucket
  storage.objects.create
    storage.objects.create D gcs_bucket
  storage.buckets.list
    storage.buckets.list D gcs_bucket
bigquery.googleapis.com
  google.cloud.bigquery.v2.JobService.InsertJob
    bigquery.jobs.create D bigquery_project
  google.cloud.bigquery.v2.JobService.GetQueryResults
    bigquery.jobs.get D bigquery_project
  google.cloud.bigquery.v2.TableService.GetTable
    bigquery.tables.get D bigquery_dataset
  google.cloud.bigquery.v2.TableDataService.List
    bigquery.tables.getData D bigquery_dataset
  google.cloud.bigquery.v2.TableService.InsertTable
    bigquery.tables.create A bigquery_dataset
iam.googleapis.com
  google.iam.admin.v1.CreateServiceAccountKey
    iam.serviceAccountKeys.create A service_account
  google.iam.admin.v1.DeleteServiceAccountKey
    iam.serviceAccountKeys.delete A service_account
  google.iam.admin.v1.ListServiceAccountKeys
    iam.serviceAccountKeys.list D service_account
  google.iam.admin.v1.ListServiceAccounts
    iam.serviceAccounts.list D service_account
  google.iam.admin.v1.GetServiceAccount
    iam.serviceAccounts.get D service_account
iamcredentials.googleapis.com
  GenerateAccessToken
    iam.serviceAccounts.getAccessToken D service_account
cloudresourcemanager.googleapis.com
  GetIamPolicy
    resourcemanager.projects.getIamPolicy D project
  SetIamPolicy
    resourcemanager.projects.setIamPolicy A project
secretmanager.googleapis.com
  google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion
    secretmanager.versions.access D audited_resource
  google.cloud.secretmanager.v1.SecretManagerService.ListSecrets
    secretmanager.secrets.list D audited_resource
compute.googleapis.com
  v1.compute.instances.insert
    compute.instances.create A gce_instance
  v1.compute.instances.delete
    compute.instances.delete A gce_instance
  v1.compute.disks.createSnapshot
    compute.disks.createSnapshot A gce_disk
container.googleapis.com
  google.container.v1.ClusterManager.GetCluster
    container.clusters.get D gke_cluster
run.googleapis.com
  google.cloud.run.v1.Services.ReplaceService
    run.services.update A cloud_run_revision
cloudkms.googleapis.com
  Decrypt
    cloudkms.cryptoKeyVersions.useToDecrypt D cloudkms_cryptokey
dataflow.googleapis.com
  dataflow.jobs.create
    dataflow.jobs.create A dataflow_step
aiplatform.googleapis.com
  google.cloud.aiplatform.v1.PredictionService.Predict
    aiplatform.endpoints.predict D audited_resource
  google.cloud.aiplatform.v1.PipelineService.CreatePipelineJob
    aiplatform.pipelineJobs.create A audited_resource
cloudbuild.googleapis.com
  google.devtools.cloudbuild.v1.CloudBuild.CreateBuild
    cloudbuild.builds.create A build
artifactregistry.googleapis.com
  Docker-PutManifest
    artifactregistry.repositories.uploadArtifacts D audited_resource
logging.googleapis.com
  google.logging.v2.ConfigServiceV2.ListSinks
    logging.sinks.list D audited_resource
pubsub.googleapis.com
  google.pubsub.v1.Publisher.CreateTopic
    pubsub.topics.create A pubsub_topic
"""

def _parse_methods(table: str) -> dict[str, tuple[str, str, str]]:
    methods: dict[str, tuple[str, str, str]] = {}
    service = method = ""
    for line in table.strip("\n").splitlines():
        if not line.startswith(" "):
            service = line.strip()
        elif not line.startswith("    "):
            method = line.strip()
        else:
            perm, log, rtype = line.split()
            methods[f"{service}:{method}"] = (perm, "activity" if log == "A" else
                                              "data_access", rtype)
    return methods


METHODS = _parse_methods(_METHOD_TABLE)
ACTIVITY_SEVERITY = "NOTICE"


def sa_email(name: str, project: str) -> str:
    return f"{name}@{project}.iam.gserviceaccount.com"


def sa(g: Gen, project: str, email: str, archetype: str, **res: Any) -> tuple[Identity, Rng]:
    ident = Identity(key=email, source="gcp", archetype=archetype, kind="machine",
                     tenant=project, name=email.split("@")[0], res=res)
    rng = g.register(ident)
    ident.principal_id = rng.digits(21)
    return ident, rng


def emit_gcp(g: Gen, ident: Identity, rng: Rng, t: float, action: str, *, ip: str, ua: str,
             **extra: Any) -> Call | None:
    eid = extra.pop("eid", None)
    scenario = extra.pop("scenario", None)
    call = g.emit(ident, rng, t, action, ip=ip, ua=ua, region=extra.pop("region", ""),
                  extra=extra, eid=eid, scenario=scenario)
    if call is not None and eid is None:
        call.eid = insert_id(call.eid)
    return call


def insert_id(seed_uuid: str) -> str:
    """A LogEntry ``insertId`` (12 lowercase letters and digits) derived from a drawn UUID."""
    n = int(seed_uuid.replace("-", ""), 16)
    out = []
    for _ in range(12):
        n, digit = divmod(n, 36)
        out.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(out)


def gcp_actor(g: Gen, project: str, name: str, archetype: str, ops: list[tuple[str, float]],
              per_hour: float, ua: str, nets: list[str], shape: str = "flat",
              key_name: bool = False, burst: tuple[int, int] | None = None,
              email: str | None = None, first_day: int = 0, **res: Any
              ) -> tuple[Identity, Rng]:
    """A service account with its own API set, networks and schedule.

    ``burst`` = (hour, n): a daily batch of ``n`` extra calls at that hour (scheduled jobs).
    ``key_name``: authenticates with a user-managed key (runs outside GCP).
    """
    ident, rng = sa(g, project, email or sa_email(name, project), archetype, **res)
    ident.first_day = first_day
    key = f"//iam.googleapis.com/projects/{project}/serviceAccounts/{ident.key}/keys/" \
        f"{rng.hex(40)}" if key_name else None
    weight = business_weight if shape == "business" else None
    callers = [rng.host(net) for net in nets for _ in range(2)]
    for day in g.day_range(ident):
        times = poisson_times(g, rng, day, per_hour, weight)
        if burst:
            t = g.day_t(day) + burst[0] * HOUR + rng.uniform(0, 120)
            for _ in range(burst[1]):
                times.append(t)
                t += rng.uniform(2, 20)
        for t in sorted(times):
            emit_gcp(g, ident, rng, t, rng.weighted(ops), ip=rng.choice(callers), ua=ua,
                     key_name=key)
    return ident, rng


# --- rendering ----------------------------------------------------------------------------

def render(c: Call, rng: Rng) -> dict[str, Any]:
    service, _, method = c.action.partition(":")
    perm, log, rtype = METHODS.get(c.action, (method, "data_access", "audited_resource"))
    x = c.extra
    project = c.ident.tenant if "project" not in x else x["project"]
    resource_name = x.get("resource_name") or _resource_name(c, rng, service, project)
    auth: dict[str, Any] = {"principalEmail": c.ident.key}
    if c.ident.key.startswith("principal://"):
        auth = {"principalSubject": c.ident.key}
    if x.get("key_name"):
        auth["serviceAccountKeyName"] = x["key_name"]
    if x.get("delegation"):
        auth["serviceAccountDelegationInfo"] = [_first_party(p) for p in x["delegation"]]
    code = x.get("code", 0)
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "status": {} if not code else {"code": code, "message": x.get("message", (
            f"Permission '{perm}' denied on resource (or it may not exist)."))},
        "authenticationInfo": auth,
        "requestMetadata": {"callerIp": c.ip, "callerSuppliedUserAgent": c.ua,
                            "requestAttributes": {"time": iso_ns(c.t, rng.randint(0, 999)),
                                                  "auth": {}},
                            "destinationAttributes": {}},
        "serviceName": service, "methodName": method,
        "authorizationInfo": [{"resource": x.get("authz_resource", resource_name),
                               "permission": perm, "granted": not code,
                               "resourceAttributes": {}}],
        "resourceName": resource_name,
    }
    for part in ("request", "response", "metadata"):
        if part in x:
            payload[part] = x[part]
    if c.region:
        payload["resourceLocation"] = {"currentLocations": [c.region]}
    severity = "ERROR" if code else (ACTIVITY_SEVERITY if log == "activity" else "INFO")
    return {"protoPayload": payload, "insertId": c.eid,
            "resource": {"type": rtype, "labels": _labels(rtype, project, x, service, method)},
            "timestamp": iso_ns(c.t, rng.randint(0, 999)), "severity": severity,
            "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2F{log}",
            "receiveTimestamp": iso_ns(c.t + rng.uniform(0.2, 1.5), rng.randint(0, 999))}


def log_of(c: Call) -> str:
    return METHODS.get(c.action, ("", "data_access", ""))[1]


def _first_party(principal: str) -> dict[str, Any]:
    if principal.startswith("principal://"):
        return {"principalSubject": principal}
    return {"firstPartyPrincipal": {"principalEmail": principal}}


def _resource_name(c: Call, rng: Rng, service: str, project: str) -> str:
    res = c.ident.res
    if service == "storage.googleapis.com":
        bucket = res.get("bucket", f"{project}-data")
        if c.action.endswith("objects.get") or c.action.endswith("objects.create"):
            return (f"projects/_/buckets/{bucket}/objects/{res.get('prefix', 'exports')}/"
                    f"{rng.hex(8)}.avro")
        return f"projects/_/buckets/{bucket}"
    if service == "bigquery.googleapis.com":
        if "JobService" in c.action:
            return f"projects/{project}/jobs/bqjob_r{rng.hex(16)}_{rng.hex(16)}_1"
        return (f"projects/{project}/datasets/{res.get('dataset', 'analytics')}/tables/"
                f"{rng.choice(res.get('tables', ['events']))}")
    if service in ("iam.googleapis.com", "iamcredentials.googleapis.com"):
        return f"projects/-/serviceAccounts/{c.ident.principal_id}"
    if service == "secretmanager.googleapis.com":
        number = world.GCP_PROJECT_NUMBERS.get(project, "0")
        return (f"projects/{number}/secrets/{rng.choice(res.get('secrets', ['db-password']))}"
                "/versions/latest")
    if service == "cloudkms.googleapis.com":
        return f"projects/{project}/locations/global/keyRings/app/cryptoKeys/{c.ident.name}"
    if service == "container.googleapis.com":
        return f"projects/{project}/locations/us-central1/clusters/ml-gke"
    if service == "compute.googleapis.com":
        return f"projects/{project}/zones/us-central1-a/instances/{c.ident.name}-{rng.b36(4)}"
    return f"projects/{project}"


def _labels(rtype: str, project: str, x: dict[str, Any], service: str,
            method: str) -> dict[str, str]:
    labels = {"project_id": project}
    if rtype == "gcs_bucket":
        labels.update(bucket_name=x.get("bucket", ""), location="us-central1")
    elif rtype == "service_account":
        labels.update(email_id=x.get("target_email", ""), unique_id=x.get("target_id", ""))
    elif rtype in ("bigquery_dataset",):
        labels["dataset_id"] = x.get("dataset", "analytics")
    elif rtype == "audited_resource":
        labels.update(service=service, method=method)
    return labels


# --- the projects' populations ------------------------------------------------------------

ST_GET = "storage.googleapis.com:storage.objects.get"
ST_LIST = "storage.googleapis.com:storage.objects.list"
ST_PUT = "storage.googleapis.com:storage.objects.create"
BQ_JOB = "bigquery.googleapis.com:google.cloud.bigquery.v2.JobService.InsertJob"
BQ_RES = "bigquery.googleapis.com:google.cloud.bigquery.v2.JobService.GetQueryResults"
BQ_TABLE = "bigquery.googleapis.com:google.cloud.bigquery.v2.TableService.GetTable"
BQ_DATA = "bigquery.googleapis.com:google.cloud.bigquery.v2.TableDataService.List"
SECRET = ("secretmanager.googleapis.com:"
          "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion")
KMS = "cloudkms.googleapis.com:Decrypt"
TOKEN = "iamcredentials.googleapis.com:GenerateAccessToken"
CREATE_KEY = "iam.googleapis.com:google.iam.admin.v1.CreateServiceAccountKey"
LIST_SA = "iam.googleapis.com:google.iam.admin.v1.ListServiceAccounts"
LIST_KEYS = "iam.googleapis.com:google.iam.admin.v1.ListServiceAccountKeys"
GET_IAM = "cloudresourcemanager.googleapis.com:GetIamPolicy"
SET_IAM = "cloudresourcemanager.googleapis.com:SetIamPolicy"
PREDICT = "aiplatform.googleapis.com:google.cloud.aiplatform.v1.PredictionService.Predict"


def projects(g: Gen) -> dict[str, Any]:
    """Simulate the GCP service accounts; returns handles the scenarios reuse."""
    rng = Rng(f"{g.seed}|gcp")
    handles: dict[str, Any] = {}
    for spec in _specs(rng):
        extra = {k: v for k, v in spec.items() if k not in ("p", "n", "a", "ops", "rate", "ua",
                                                            "nets")}
        ident, _ = gcp_actor(g, spec["p"], spec["n"], spec["a"], spec["ops"], spec["rate"],
                             spec["ua"], spec["nets"], **extra)
        handles[spec["n"]] = ident
    _google_managed(g)
    return handles


def _specs(rng: Rng) -> list[dict[str, Any]]:
    """User-managed service accounts: project, name, archetype, API mix, calls per hour,
    client, networks, and options of ``gcp_actor``."""
    an, ml, infra = (world.GCP_PROJECTS[k] for k in ("analytics", "ml", "infra"))
    gce = [rng.choice(world.GCP_VPC) for _ in range(3)]
    goog = [world.google_public24(rng) for _ in range(3)]
    specs: list[dict[str, Any]] = [
        dict(p=an, n="bq-scheduled-queries", a="scheduled_job", ops=[(BQ_JOB, 3), (BQ_RES, 3)],
             rate=0.2, ua=world.GCP_GO_UA, nets=["private"], burst=(3, 24)),
        dict(p=an, n="dataflow-worker", a="data_pipeline", ops=[(ST_GET, 5), (ST_LIST, 1),
                                                                (ST_PUT, 2), (BQ_DATA, 1)],
             rate=0.5, ua=world.GCP_JAVA_UA, nets=gce[:2], burst=(2, 60), bucket=f"{an}-raw"),
        dict(p=an, n="composer-env", a="orchestrator", ops=[
            (BQ_JOB, 3), (ST_LIST, 2), ("dataflow.googleapis.com:dataflow.jobs.create", 0.3)],
             rate=3.0, ua=world.GCP_PY_UA, nets=gce[1:]),
        dict(p=an, n="looker-bq", a="bi_connector", ops=[(BQ_JOB, 4), (BQ_RES, 4), (BQ_TABLE, 1)],
             rate=4.0, ua=world.GCP_JAVA_UA, nets=["35.227.128", "35.227.129"],
             shape="business", key_name=True),
        dict(p=an, n="tableau-connector", a="bi_connector", ops=[(BQ_JOB, 3), (BQ_RES, 3)],
             rate=1.5, ua="Tableau/2024.2 (bigquery-odbc 3.0.4),gzip(gfe)",
             nets=world.ONPREM_DC, shape="business", key_name=True),
        dict(p=an, n="backup-exporter", a="scheduled_job", ops=[(ST_PUT, 5), (ST_LIST, 1)],
             rate=0.0, ua=world.GCP_GO_UA, nets=world.ONPREM_DC, key_name=True,
             burst=(4, 30), bucket=f"{an}-backups"),
        dict(p=an, n="secret-rotator", a="scheduled_job", ops=[(SECRET, 2), (
            "secretmanager.googleapis.com:google.cloud.secretmanager.v1.SecretManagerService."
            "ListSecrets", 1)], rate=0.0, ua=world.GCP_PY_UA, nets=["private"], burst=(6, 6)),
        dict(p=ml, n="ml-training", a="batch", ops=[(ST_GET, 4), (ST_PUT, 1), (BQ_DATA, 2)],
             rate=1.0, ua=world.GCP_PY_UA, nets=gce, bucket=f"{ml}-datasets"),
        dict(p=ml, n="vertex-pipelines", a="orchestrator", ops=[(
            "aiplatform.googleapis.com:google.cloud.aiplatform.v1.PipelineService."
            "CreatePipelineJob", 1), (ST_GET, 3), (ST_LIST, 1)], rate=0.5, ua=world.GCP_PY_UA,
             nets=["private"], bucket=f"{ml}-pipelines"),
        dict(p=ml, n="model-serving", a="service", ops=[(ST_GET, 1), (KMS, 1), (SECRET, 0.3)],
             rate=1.0, ua=world.GCP_GO_UA, nets=["gce-internal-ip"], bucket=f"{ml}-models"),
        dict(p=ml, n="prediction-client", a="service", ops=[(PREDICT, 1)], rate=6.0,
             ua=world.GCP_PY_UA, nets=gce[:1], shape="traffic"),
        dict(p=ml, n="feature-store-sync", a="scheduled_job", ops=[(BQ_JOB, 2), (BQ_DATA, 3)],
             rate=0.5, ua=world.GCP_PY_UA, nets=gce[:1], first_day=16),
        dict(p=infra, n="terraform-gcp", a="terraform", ops=[(GET_IAM, 3), (LIST_SA, 1),
                                                            (BQ_TABLE, 1), (
            "container.googleapis.com:google.container.v1.ClusterManager.GetCluster", 2)],
             rate=0.0, ua=world.GCP_TF_UA, nets=["private"], burst=(16, 25)),
        dict(p=infra, n="dns-updater", a="poller", ops=[(ST_GET, 1)], rate=4.0,
             ua=world.GCP_GO_UA, nets=gce[2:], bucket=f"{infra}-config"),
        dict(p=infra, n="log-router-monitor", a="poller", ops=[(
            "logging.googleapis.com:google.logging.v2.ConfigServiceV2.ListSinks", 1)], rate=1.0,
             ua=world.GCP_GO_UA, nets=["private"]),
        dict(p=infra, n="gke-nodes", a="node", ops=[(ST_GET, 3)], rate=3.0,
             ua="containerd/1.7.22,gzip(gfe)", nets=gce,
             bucket="artifacts.nw-shared-infra.appspot.com"),
        dict(p=infra, n="secops-scanner", a="poller", ops=[(GET_IAM, 2), (LIST_SA, 1),
                                                           (LIST_KEYS, 2)],
             rate=1.0, ua=world.GCP_PY_UA, nets=goog[:1]),
    ]
    for i, topic in enumerate(("orders", "clicks", "inventory", "payments", "shipments",
                               "returns", "reviews")):
        specs.append(dict(p=an, n=f"ingest-{topic}", a="service", ops=[(ST_PUT, 4), (ST_LIST, 1)],
                          rate=rng.uniform(0.8, 3.0), ua=world.GCP_GO_UA, nets=[gce[i % 3]],
                          bucket=f"{an}-raw", prefix=topic))
    for i, name in enumerate(("churn-model", "ranker", "embeddings", "forecast",
                              "anomaly-model", "pricing-model", "search-ltr", "demand-model")):
        specs.append(dict(p=ml, n=f"{name}-trainer", a="batch", ops=[(ST_GET, 4), (BQ_DATA, 2),
                                                                     (ST_PUT, 1)],
                          rate=0.0, ua=world.GCP_PY_UA, nets=[gce[i % 3]], burst=(1 + i, 40),
                          bucket=f"{ml}-datasets"))
    return specs


def _google_managed(g: Gen) -> None:
    """Default and Google-managed service accounts (Compute, Cloud Build, service agents)."""
    an, ml, infra = (world.GCP_PROJECTS[k] for k in ("analytics", "ml", "infra"))
    number = world.GCP_PROJECT_NUMBERS
    managed = [(an, f"{number[an]}-compute@developer.gserviceaccount.com", [(ST_GET, 1)], 1.0),
               (infra, f"{number[infra]}@cloudbuild.gserviceaccount.com",
                [("cloudbuild.googleapis.com:google.devtools.cloudbuild.v1.CloudBuild."
                  "CreateBuild", 0.2), ("artifactregistry.googleapis.com:Docker-PutManifest", 1),
                 (ST_PUT, 1)], 0.8),
               (ml, f"service-{number[ml]}@gcp-sa-aiplatform.iam.gserviceaccount.com",
                [(ST_GET, 1)], 1.0),
               (infra, f"service-{number[infra]}@container-engine-robot.iam.gserviceaccount.com",
                [("compute.googleapis.com:v1.compute.instances.insert", 1),
                 ("compute.googleapis.com:v1.compute.instances.delete", 1)], 0.15)]
    for project, email, ops, rate in managed:
        gcp_actor(g, project, email.split("@")[0], "google_managed", ops, rate,
                  "GoogleInternal,gzip(gfe)" if "robot" in email else world.GCP_GO_UA,
                  ["private"], email=email)


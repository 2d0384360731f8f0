"""The simulated estate: accounts, clusters, projects, networks and user-agent strings.

Addresses are invented. Public pools imitate the shape of real ones (AWS NAT gateways in
AWS ranges, GitHub-hosted runners in Azure ranges, office and home ISPs, VPS ranges used by
attackers); private pools are the VPCs and pod networks of each environment.
"""

from __future__ import annotations

from .core import Rng

ORG = "northwind"
EMAIL_DOMAIN = "northwind-eng.com"
GITHUB_ORG = "northwind-eng"

ACCOUNTS = {"prod": "482913305671", "staging": "739104662815", "shared": "205617934480"}
ACCOUNT_NAMES = {number: name for name, number in ACCOUNTS.items()}
HOME_REGION = "us-east-1"
TRAIL = {acct: f"arn:aws:cloudtrail:us-east-1:{acct}:trail/org-audit-trail" for acct in
         ACCOUNTS.values()}

CLUSTERS = {"prod": "prod-eks-use1", "staging": "staging-eks-use1"}
GCP_PROJECTS = {"analytics": "nw-analytics-prod", "ml": "nw-ml-platform",
                "infra": "nw-shared-infra"}
GCP_PROJECT_NUMBERS = {"nw-analytics-prod": "318204957713", "nw-ml-platform": "590117346201",
                       "nw-shared-infra": "846622039154"}

VPC = {"prod": "10.20", "staging": "10.30", "shared": "10.10"}
POD_NET = {"prod-eks-use1": "10.20.{}", "staging-eks-use1": "10.30.{}"}
GCP_VPC = ("10.128.0", "10.128.1", "10.132.0")

OFFICE = ["81.106.34", "81.106.35"]
VPN = ["145.236.12"]
ONPREM_DC = ["62.232.114", "62.232.115"]
ATTACKER = ["185.220.101", "45.155.205", "194.165.16", "91.219.236", "103.151.172",
            "5.188.206"]
HOME_FIRST = (24, 73, 76, 86, 90, 98, 108, 174)

_AWS_USE1 = ((3, 208, 223), (34, 192, 207), (44, 192, 223), (52, 0, 31), (54, 144, 159))
_AWS_EUW1 = ((34, 240, 247), (52, 16, 17), (54, 72, 73))
_GITHUB = ((4, 148, 148), (20, 57, 57), (20, 84, 85), (40, 84, 84), (52, 238, 238),
           (172, 183, 183))
_GOOGLE = ((34, 72, 127), (35, 184, 247))


def _pick24(rng: Rng, pools: tuple[tuple[int, int, int], ...]) -> str:
    first, lo, hi = rng.choice(pools)
    return f"{first}.{rng.randint(lo, hi)}.{rng.randint(0, 255)}"


def aws_public24(rng: Rng, region: str = HOME_REGION) -> str:
    return _pick24(rng, _AWS_EUW1 if region.startswith("eu-") else _AWS_USE1)


def github_runner_pool(rng: Rng, n: int) -> list[str]:
    return [_pick24(rng, _GITHUB) for _ in range(n)]


def google_public24(rng: Rng) -> str:
    return _pick24(rng, _GOOGLE)


def home24(rng: Rng) -> str:
    return f"{rng.choice(HOME_FIRST)}.{rng.randint(1, 254)}.{rng.randint(0, 255)}"


def private24(rng: Rng, env: str, lo: int = 0, hi: int = 63) -> str:
    return f"{VPC[env]}.{rng.randint(lo, hi)}"


# --- user agents ---------------------------------------------------------------------------

KERNELS = ("5.10.225-213.878.amzn2.x86_64", "6.1.112-122.189.amzn2023.x86_64",
           "5.10.226-214.880.amzn2.x86_64")


def boto3_ua(rng: Rng, lambda_rt: str | None = None, prefix: str = "") -> str:
    """The fleet runs a handful of pinned SDK builds, as a real estate with base images does."""
    ver = rng.choice(("1.34.131", "1.34.162", "1.35.36", "1.35.54"))
    py = rng.choice(("3.11.10", "3.12.7"))
    env = f" exec-env/AWS_Lambda_{lambda_rt}" if lambda_rt else ""
    kernel = "5.10.227-239.884.amzn2.x86_64" if lambda_rt else rng.choice(KERNELS)
    return (f"{prefix}Boto3/{ver} md/Botocore#{ver} ua/2.0 os/linux#{kernel} md/arch#x86_64 "
            f"lang/python#{py} md/pyimpl#CPython{env} cfg/retry-mode#legacy Botocore/{ver}")


def cli_ua(rng: Rng, os_tag: str = "linux#6.8.0-1017-azure", exe: str = "x86_64.ubuntu.22",
           command: str = "") -> str:
    ver = rng.choice(("2.18.4", "2.19.1", "2.17.62"))
    cmd = f" command/{command}" if command else ""
    return (f"aws-cli/{ver} md/awscrt#0.22.0 ua/2.0 os/{os_tag} md/arch#x86_64 "
            f"lang/python#3.12.6 md/pyimpl#CPython exe/{exe} prompt/off{cmd}")


def terraform_ua(tf: str = "1.9.8", provider: str = "5.76.0", api: str = "ec2") -> str:
    return (f"APN/1.0 HashiCorp/1.0 Terraform/{tf} (+https://www.terraform.io) "
            f"terraform-provider-aws/{provider} (+https://registry.terraform.io/providers/"
            f"hashicorp/aws) aws-sdk-go-v2/1.32.4 ua/2.1 os/linux lang/go#1.23.2 "
            f"md/GOOS#linux md/GOARCH#amd64 api/{api}#1.187.0")


def go_sdk_ua(app: str, version: str) -> str:
    return f"aws-sdk-go/1.55.5 (go1.22.7; linux; amd64) {app}/{version}"


def go_v2_ua(api: str) -> str:
    return (f"aws-sdk-go-v2/1.32.2 ua/2.1 os/linux lang/go#1.23.1 md/GOOS#linux "
            f"md/GOARCH#amd64 api/{api}#1.40.2")


def java_ua(rng: Rng) -> str:
    return (f"aws-sdk-java/2.28.{rng.choice((11, 26))} Linux/{rng.choice(KERNELS)} "
            "OpenJDK_64-Bit_Server_VM/17.0.13+11-LTS Java/17.0.13 vendor/Amazon.com_Inc. "
            "io/sync http/Apache cfg/retry-mode/standard")


def node_ua(rng: Rng, api: str) -> str:
    ver = rng.choice(("3.658.0", "3.687.0"))
    return (f"aws-sdk-js/{ver} ua/2.1 os/linux#5.10.227-239.884.amzn2.x86_64 lang/js "
            f"md/nodejs#20.18.0 api/{api}#{ver}")


GHA_STS_UA = ("aws-sdk-js/3.687.0 ua/2.1 os/linux#6.8.0-1017-azure lang/js md/nodejs#20.18.0 "
              "api/sts#3.687.0 configure-aws-credentials-for-github-actions")
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:132.0) Gecko/20100101 Firefox/132.0",
)
LANGCHAIN_UA_PREFIX = "langchain-aws/0.2.4 langchain/0.2.16 "
BEDROCK_AGENT_UA = "bedrock-agent/1.0 (action-group; python3.12) Boto3/1.35.36 Botocore/1.35.36"

KUBECTL = ("kubectl/v1.30.5 (darwin/arm64) kubernetes/74e84a9",
           "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
           "kubectl/v1.29.9 (darwin/amd64) kubernetes/114a0c3")
K8S_CONTROLLER_UA = "kube-controller-manager/v1.30.5 (linux/amd64) kubernetes/74e84a9/{}"

GCLOUD_UA = ("google-cloud-sdk gcloud/499.0.0 command/gcloud.{} invocation-id/{} "
             "environment/None environment-version/None client-os/{} client-os-ver/24.1.0 "
             "client-pltf-arch/arm interactive/True from-script/False python/3.12.7 term/xterm")
GCP_PY_UA = "gl-python/3.11.10 grpc/1.66.2 gax/2.21.0 gapic/3.26.0 gccl/3.26.0,gzip(gfe)"
GCP_JAVA_UA = ("gcloud-java/2.43.3 Google-API-Java-Client/2.7.0 Google-HTTP-Java-Client/1.45.0 "
               "(gzip),gzip(gfe)")
GCP_GO_UA = "google-api-go-client/0.5 Go-http-client/2.0,gzip(gfe)"
GCP_TF_UA = ("google-api-go-client/0.5 Terraform/1.9.8 (+https://www.terraform.io) "
             "Terraform-Plugin-SDK/2.33.0 terraform-provider-google/6.10.0,gzip(gfe)")
GCP_BROWSER_UA = BROWSERS[0] + ",gzip(gfe)"

"""Parse + normalise throughput on a large generated CloudTrail S3 delivery file.

Generates ``--events`` records of about 1.6 KB each (a realistic mix of assumed-role,
IAM-user, SSO and service principals, several user agents and addresses) into one
``{"Records": [...]}`` file, then measures on one core, in the same run:

- plain ``orjson.loads`` of the whole file, and
- ``detector.sources.parse_payload`` (framing, identity resolution, normalisation).

The parser decodes a file this large in slices of records (``Parser._sliced_records``),
twice over (once to check, once to use), in memory that stays warm; that costs less than
one ``orjson.loads`` of the whole file, so plain ``loads`` is a reference, not a floor.

Prints events per CPU-second (process time, so other processes' load on the machine does
not count) for both and their ratio, then the parser's rate on the same records split into
files of ``--file-records`` (one parser over all of them, as a replay of an S3 bucket reads
delivery files). Target: >= 60,000 events/s for the parser, on both shapes.

    .venv/bin/python benchmarks/bench_parse.py --events 100000
"""

from __future__ import annotations

import argparse
import gc
import random
import time

import orjson

from detector.sources import NullDeadLetters, parse_payload
from detector.sources.parser import Parser
from detector.stats import RunStats

TARGET_EVENTS_PER_S = 60_000


def _identity(rng: random.Random, account: str) -> dict:
    choice = rng.random()
    if choice < 0.55:
        role = f"app-role-{rng.randrange(40)}"
        session = f"session-{rng.randrange(50)}"  # sessions repeat: each lasts an hour
        return {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE{rng.randrange(40):08d}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account,
            "accessKeyId": f"ASIA{rng.randrange(10**12):016d}",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                  "arn": f"arn:aws:iam::{account}:role/{role}",
                                  "accountId": account, "userName": role},
                "webIdFederationData": {},
                "attributes": {"creationDate": "2024-03-04T10:00:00Z",
                               "mfaAuthenticated": "false"},
                "ec2RoleDelivery": "2.0",
            },
        }
    if choice < 0.85:
        user = f"svc-user-{rng.randrange(30)}"
        return {"type": "IAMUser", "principalId": f"AIDAEXAMPLE{rng.randrange(30):08d}",
                "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                "accessKeyId": f"AKIA{rng.randrange(30):016d}", "userName": user}
    if choice < 0.95:
        return {"type": "AWSService", "invokedBy": rng.choice(
            ["ec2.amazonaws.com", "config.amazonaws.com", "lambda.amazonaws.com"])}
    person = f"user-{rng.randrange(20)}@example.com"
    role = "AWSReservedSSO_Admin_0123456789abcdef"
    return {"type": "AssumedRole", "principalId": f"AROASSO:{person}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{person}", "accountId": account,
            "accessKeyId": f"ASIA{rng.randrange(10**12):016d}",
            "sessionContext": {"sessionIssuer": {
                "type": "Role", "arn": f"arn:aws:iam::{account}:role/aws-reserved/"
                f"sso.amazonaws.com/{role}", "accountId": account, "userName": role}}}


def make_record(rng: random.Random, index: int) -> dict:
    account = f"{rng.choice([111111111111, 222222222222, 333333333333])}"
    source = rng.choice(["s3", "ec2", "iam", "sts", "kms", "lambda", "dynamodb"])
    agent = rng.choice([
        "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2 prompt/off command/s3.ls",
        "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11",
        "APN/1.0 HashiCorp/1.0 Terraform/1.6.6 (+https://www.terraform.io) "
        "terraform-provider-aws/5.31.0 aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5",
        "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488]",
    ])
    return {
        "eventVersion": "1.09",
        "userIdentity": _identity(rng, account),
        "eventTime": f"2024-03-04T{index // 3600 % 24:02d}:{index // 60 % 60:02d}:"
                     f"{index % 60:02d}Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": rng.choice(["GetObject", "DescribeInstances", "ListRoles", "AssumeRole",
                                 "Decrypt", "Invoke", "PutItem"]),
        "awsRegion": rng.choice(["us-east-1", "eu-west-1"]),
        "sourceIPAddress": rng.choice([f"203.0.113.{rng.randrange(256)}",
                                       f"10.0.{rng.randrange(8)}.{rng.randrange(256)}",
                                       "ec2.amazonaws.com"]),
        "userAgent": agent,
        "requestParameters": {"bucketName": f"bucket-{rng.randrange(50)}",
                              "key": f"data/{rng.randrange(10**9)}.parquet",
                              "Host": "bucket.s3.amazonaws.com",
                              "filter": {"names": ["x" * 40, "y" * 40]}},
        "responseElements": None,
        "additionalEventData": {"SignatureVersion": "SigV4",
                                "CipherSuite": "ECDHE-RSA-AES128-GCM-SHA256",
                                "bytesTransferredIn": 0.0, "bytesTransferredOut": 512.0,
                                "AuthenticationMethod": "AuthHeader", "x-amz-id-2": "z" * 76},
        "requestID": f"{rng.randrange(16**16):016X}",
        "eventID": f"{rng.randrange(16**32):032x}",
        "readOnly": True,
        "resources": [{"type": "AWS::S3::Object",
                       "ARN": f"arn:aws:s3:::bucket-{rng.randrange(50)}/data/x.parquet"}],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": account,
        "eventCategory": "Data",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": "bucket.s3.us-east-1.amazonaws.com"},
    }


def build_file(events: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    return orjson.dumps({"Records": [make_record(rng, i) for i in range(events)]})


def best_of(repeats: int, func) -> float:
    """Best CPU time of ``repeats`` runs: per-core cost, robust to other processes' load."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        func()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--events", type=int, default=100_000)
    cli.add_argument("--repeats", type=int, default=3)
    cli.add_argument("--file-records", type=int, default=500,
                     help="records per file for the many-files figure (S3 delivery size)")
    args = cli.parse_args()

    data = build_file(args.events)
    size = len(data) / args.events
    counted: list[int] = []

    def parse() -> None:
        stats = RunStats()
        counted.append(len(parse_payload(data, origin="bench", stats=stats,
                                         dead_letters=NullDeadLetters())))

    records = orjson.loads(data)["Records"]
    files = [orjson.dumps({"Records": records[i:i + args.file_records]})
             for i in range(0, len(records), args.file_records)]
    del records

    def parse_files() -> None:
        """One parser over many delivery files, as a replay of a bucket runs it."""
        parser = Parser(stats=RunStats(), dead_letters=NullDeadLetters())
        total = sum(len(parser.feed(blob, f"bench-{n}")) for n, blob in enumerate(files))
        counted.append(total + len(parser.finish()))

    loads_s = best_of(args.repeats, lambda: orjson.loads(data))
    gc.disable()
    loads_nogc_s = best_of(args.repeats, lambda: orjson.loads(data))
    gc.enable()
    parse_s = best_of(args.repeats, parse)
    if counted[-1] != args.events:
        raise SystemExit(f"parser returned {counted[-1]} events for {args.events} records")
    gc.collect()
    files_s = best_of(args.repeats, parse_files)
    if counted[-1] != args.events:
        raise SystemExit(f"parser returned {counted[-1]} events for {args.events} records")
    loads_rate, parse_rate = args.events / loads_s, args.events / parse_s
    nogc_rate = args.events / loads_nogc_s
    print(f"file: {args.events} CloudTrail events, {len(data) / 1e6:.1f} MB, "
          f"{size:.0f} bytes/event")
    print(f"orjson.loads only      : {loads_rate:>10,.0f} events/s (GC on, Python default)")
    print(f"orjson.loads, GC off   : {nogc_rate:>10,.0f} events/s (as the parser runs it)")
    verdict = "met" if parse_rate >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"parse + normalise      : {parse_rate:>10,.0f} events/s  "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict})")
    print(f"ratio parse / orjson   : {parse_rate / loads_rate:.2f} (GC on), "
          f"{parse_rate / nogc_rate:.2f} (GC off)")
    files_rate = args.events / files_s
    verdict = "met" if files_rate >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"same records as {len(files):,} files of {args.file_records:,} "
          f"({len(files[0]) / 1e3:,.0f} kB each): {files_rate:>10,.0f} events/s "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks infra/template.yaml beyond what cfn-lint sees.

1. cfn-lint (pinned in requirements.txt) must pass.
2. Every Ref / GetAtt / ${Sub} in function environments names a real resource or parameter
   (cfn-lint's blind spot: a dangling !Ref inside environment variables goes unreported).
3. The template's DynamoDB tables equal what the code creates: `shopmind aws-init` runs against
   the AWS emulator and every table's keys, attribute types, indexes, projections, TTL and
   billing mode are compared with the template's.
4. The HTTP routes agree three ways: the routes the functions build (`shopmind routes`), the
   paths of infra/openapi.yaml (itself validated as OpenAPI 3.1), and the HttpApi events of the
   template, each bound to the right function; every route on exactly the APIs and authorisers
   its access says (public: StorefrontApi; events: StorefrontEventsApi, which queues for the
   profile-updater, its request model the OpenAPI schema, checked with sample and refused
   batches; staff: IAM on StaffApi; staff+console: that and the
   Cognito JWT on ConsoleApi; console: ConsoleApi's page without one), every function behind
   ConsoleApi allowed to be invoked by it; and every route has a sample in events/apigw/.
5. The event archive's Glue table has the event contract's fields, the columns the DuckDB
   check of the signals SQL reads (duckdb_signals.py), and the dt partition.

    .venv/bin/python infra/scripts/check_template.py --endpoint http://127.0.0.1:PORT
"""

import argparse
import os
import re
import json
import subprocess
import sys
from pathlib import Path

import boto3
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::NoValue", "AWS::URLSuffix"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def refs(node):
    """Names referenced by Ref, Fn::GetAtt and Fn::Sub inside node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                yield v
            elif k == "Fn::GetAtt":
                yield (v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    yield name.split(".")[0]
                if isinstance(v, list):
                    yield from refs(v[1])
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for x in node:
            yield from refs(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default=os.environ.get("SHOPMIND_TEST_AWS_ENDPOINT"))
    ap.add_argument("--write-openapi-json", action="store_true",
                    help="rewrite infra/openapi.json from infra/openapi.yaml first")
    args = ap.parse_args()
    if not args.endpoint:
        sys.exit("check_template: no emulator endpoint (run through infra/scripts/test.sh)")

    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    if lint.returncode != 0:
        fail(f"cfn-lint:\n{lint.stdout}{lint.stderr}")

    template, matches = decode(str(TEMPLATE))
    if matches:
        sys.exit(f"check_template: cannot parse the template: {matches}")
    resources = template["Resources"]
    known = set(resources) | set(template.get("Parameters", {})) | PSEUDO
    envs = [("Globals", template.get("Globals", {}).get("Function", {}).get("Environment", {}))]
    envs += [(n, r["Properties"].get("Environment", {})) for n, r in resources.items()
             if r["Type"] == "AWS::Serverless::Function"]
    checked = 0
    for owner, env in envs:
        for name in refs(env):
            checked += 1
            if name not in known:
                fail(f"{owner}: environment refers to {name}, which is neither a resource nor a parameter")

    # A function streams its responses exactly when a RESPONSE_STREAM function URL calls it
    # (API Gateway cannot read a streamed response; a function URL in that mode cannot read a
    # buffered one), and the streaming support function is the support function otherwise.
    for name, r in resources.items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        p = r["Properties"]
        streams = p.get("Environment", {}).get("Variables", {}).get("SHOPMIND_LAMBDA_INVOKE_MODE") == "RESPONSE_STREAM"
        url_streams = p.get("FunctionUrlConfig", {}).get("InvokeMode") == "RESPONSE_STREAM"
        checked += 1
        if streams != url_streams:
            fail(f"{name}: SHOPMIND_LAMBDA_INVOKE_MODE streaming is {streams} but its function URL's is {url_streams}")
        checked += 1
        if streams and any(ev["Type"] == "HttpApi" for ev in p.get("Events", {}).values()):
            fail(f"{name}: streams its responses, which an HttpApi route cannot read")
    plain, streamed = (resources.get(n, {}).get("Properties", {}) for n in ("SupportFunction", "SupportStreamFunction"))
    for key in ("CodeUri", "MemorySize", "EphemeralStorage", "Policies"):
        checked += 1
        if plain.get(key) != streamed.get(key):
            fail(f"SupportStreamFunction {key} differs from SupportFunction's")
    env_of = lambda p: {k: v for k, v in p.get("Environment", {}).get("Variables", {}).items()
                        if k != "SHOPMIND_LAMBDA_INVOKE_MODE"}
    checked += 1
    if env_of(plain) != env_of(streamed):
        fail("SupportStreamFunction environment differs from SupportFunction's")

    # The code's tables, created in the emulator by the real binary.
    prefix = "tplcheck-"
    env = dict(os.environ, AWS_ENDPOINT_URL=args.endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1", SHOPMIND_TABLE_PREFIX=prefix, SHOPMIND_BUCKET="tplcheck-bucket")
    subprocess.run(["cargo", "run", "-p", "shopmind-local", "--bin", "shopmind", "--", "aws-init"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    ddb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    tables = {n: r for n, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    for logical, res in tables.items():
        p = res["Properties"]
        suffix = p["TableName"]["Fn::Sub"].replace("${TablePrefix}", "")
        try:
            live = ddb.describe_table(TableName=prefix + suffix)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            fail(f"{logical}: the code creates no table {suffix!r}")
            continue
        def keys(ks):
            return sorted((k["AttributeName"], k["KeyType"]) for k in ks)
        checks = {
            "key schema": (keys(p["KeySchema"]), keys(live["KeySchema"])),
            "attribute types": (sorted((a["AttributeName"], a["AttributeType"]) for a in p["AttributeDefinitions"]),
                                sorted((a["AttributeName"], a["AttributeType"]) for a in live["AttributeDefinitions"])),
            "indexes": (sorted((g["IndexName"], tuple(keys(g["KeySchema"])), g["Projection"]["ProjectionType"])
                               for g in p.get("GlobalSecondaryIndexes", [])),
                        sorted((g["IndexName"], tuple(keys(g["KeySchema"])), g["Projection"]["ProjectionType"])
                               for g in live.get("GlobalSecondaryIndexes", []))),
            "billing": (p.get("BillingMode"), live.get("BillingModeSummary", {}).get("BillingMode")),
        }
        ttl = ddb.describe_time_to_live(TableName=prefix + suffix)["TimeToLiveDescription"]
        checks["ttl"] = (p.get("TimeToLiveSpecification", {}).get("AttributeName"),
                         ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None)
        for what, (declared, created) in checks.items():
            checked += 1
            if declared != created:
                fail(f"{logical} {what}: template {declared} != code {created}")
    all_tables = [t for page in ddb.get_paginator("list_tables").paginate() for t in page["TableNames"]]
    live_names = {t[len(prefix):] for t in all_tables if t.startswith(prefix)}
    declared_names = {r["Properties"]["TableName"]["Fn::Sub"].replace("${TablePrefix}", "") for r in tables.values()}
    checked += 1
    if live_names != declared_names:
        fail(f"tables: template declares {sorted(declared_names)}, code creates {sorted(live_names)}")

    # Routes: code, OpenAPI, template.
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename
    spec, _ = read_from_filename(str(ROOT / "infra" / "openapi.yaml"))
    # `shopmind serve` serves the spec at /openapi.json from infra/openapi.json, generated from
    # the YAML: it must be current (`--write-openapi-json` rewrites it).
    rendered = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    json_path = ROOT / "infra" / "openapi.json"
    if args.write_openapi_json:
        json_path.write_text(rendered)
    checked += 1
    if not json_path.is_file() or json_path.read_text() != rendered:
        fail("infra/openapi.json is not infra/openapi.yaml as JSON: run "
             ".venv/bin/python infra/scripts/check_template.py --write-openapi-json")
    # An unquoted description with a comma in a YAML flow mapping ({ description: a, b }) parses
    # as extra keys with no value: the document then says less than it was written to.
    def empty_keys(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if v is None:
                    yield f"{path}/{k}"
                yield from empty_keys(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from empty_keys(v, f"{path}/{i}")
    checked += 1
    for key in empty_keys(spec, ""):
        fail(f"infra/openapi.yaml: {key} has no value (quote a description that holds a comma)")
    checked += 1
    try:
        validate(spec)
    except Exception as e:  # the validator raises its own hierarchy; any of it is a failure
        fail(f"infra/openapi.yaml is not valid OpenAPI: {e}")
    out = subprocess.run(["cargo", "run", "--quiet", "-p", "shopmind-local", "--bin", "shopmind", "--", "routes"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    code = {(m, p): f for m, p, f, _ in rows}
    access = {(m, p): a for m, p, _, a in rows}
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("get", "post", "put", "patch", "delete")}
    function_of = {"RecommendFunction": "recommend", "SupportFunction": "support",
                   "CopywriterFunction": "copywriter", "ProfileUpdaterFunction": "profile-updater",
                   "ConsoleFunction": "console"}
    # (method, path) -> {(api, authorizer, function)}: SAM HttpApi events, and the console
    # API's plain API Gateway v2 routes.
    deployed = {}
    for name, r in resources.items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        for ev in r["Properties"].get("Events", {}).values():
            if ev["Type"] == "HttpApi":
                props = ev["Properties"]
                route = (props["Method"].upper(), props["Path"])
                api = props.get("ApiId", {}).get("Ref")
                api_auth = resources.get(api, {}).get("Properties", {}).get("Auth", {})
                authorizer = props.get("Auth", {}).get("Authorizer") or api_auth.get("DefaultAuthorizer")
                deployed.setdefault(route, set()).add((api, authorizer, function_of.get(name, name)))
    invoked_by = {}
    for name, r in resources.items():
        if r["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        p = r["Properties"]
        method, _, path = p["RouteKey"].partition(" ")
        target = re.fullmatch(r"integrations/\$\{(\w+)\}", p["Target"]["Fn::Sub"]).group(1)
        uri = resources[target]["Properties"]["IntegrationUri"]["Fn::GetAtt"]
        function = uri[0] if isinstance(uri, list) else uri.split(".")[0]
        api = p["ApiId"]["Ref"]
        checked += 1
        if resources[target]["Properties"]["ApiId"]["Ref"] != api:
            fail(f"{name}: its integration {target} belongs to another API")
        authorizer = None
        if p.get("AuthorizationType", "NONE") != "NONE":
            authorizer = p["AuthorizationType"]
            auth_res = resources[p["AuthorizerId"]["Ref"]]["Properties"]
            checked += 1
            if (auth_res["ApiId"]["Ref"] != api or auth_res["AuthorizerType"] != "JWT"
                    or auth_res["JwtConfiguration"]["Audience"] != [{"Ref": "StaffUserPoolClient"}]
                    or "${StaffUserPool}" not in auth_res["JwtConfiguration"]["Issuer"]["Fn::Sub"]):
                fail(f"{name}: its authoriser is not the staff user pool's JWT authoriser on {api}")
        deployed.setdefault((method, path), set()).add((api, authorizer, function_of.get(function, function)))
        invoked_by.setdefault(function, set()).add(api)
    # Every function behind a plain route may be invoked by that API (SAM adds these itself).
    for function, apis in invoked_by.items():
        for api in apis:
            checked += 1
            allowed = any(r["Type"] == "AWS::Lambda::Permission"
                          and r["Properties"]["FunctionName"] == {"Ref": function}
                          and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
                          and "${" + api + "}/" in r["Properties"]["SourceArn"]["Fn::Sub"]
                          for r in resources.values())
            if not allowed:
                fail(f"{function}: no AWS::Lambda::Permission lets {api} invoke it")
    # Routes API Gateway serves onto a queue itself (REST API, `aws` integration with SQS): the
    # route belongs to the function that reads that queue. The request model must be the
    # OpenAPI document's schema, and the mapping must set what the profile-updater reads.
    for name, r in resources.items():
        if r["Type"] != "AWS::Serverless::Api":
            continue
        body = r["Properties"].get("DefinitionBody", {})
        for path, ops in body.get("paths", {}).items():
            for method, op in ops.items():
                integ = op.get("x-amazon-apigateway-integration", {})
                uri = integ.get("uri", {})
                uri = uri.get("Fn::Sub", "") if isinstance(uri, dict) else uri
                queue = re.search(r":sqs:path/\$\{AWS::AccountId\}/\$\{(\w+)\.QueueName\}$", uri)
                checked += 1
                if integ.get("type") != "aws" or not queue:
                    fail(f"{name} {method.upper()} {path}: not an SQS integration")
                    continue
                queue = queue.group(1)
                readers = [function_of.get(n, n) for n, f in resources.items()
                           if f["Type"] == "AWS::Serverless::Function"
                           for ev in f["Properties"].get("Events", {}).values()
                           if ev["Type"] == "SQS" and ev["Properties"]["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}]
                checked += 1
                if len(readers) != 1:
                    fail(f"{name} {method.upper()} {path}: {queue} is read by {readers}, expected one function")
                    continue
                deployed.setdefault((method.upper(), path), set()).add((name, None, readers[0]))
                checked += 1
                if op.get("x-amazon-apigateway-request-validator") not in body.get("x-amazon-apigateway-request-validators", {}) \
                        or integ.get("passthroughBehavior") != "never":
                    fail(f"{name} {method.upper()} {path}: the body is not validated, or unmatched bodies pass through")
                mapping = integ.get("requestTemplates", {}).get("application/json", "")
                intake = (ROOT / "shared" / "profiles" / "src" / "intake.rs").read_text()
                for const in ("ORIGIN_ATTRIBUTE", "STOREFRONT_ORIGIN", "AUTHORIZATION_ATTRIBUTE", "REQUEST_ID_ATTRIBUTE"):
                    value = re.search(rf'pub const {const}: &str = "([^"]+)";', intake).group(1)
                    checked += 1
                    if f"={value}&" not in mapping and not mapping.endswith(f"={value}"):
                        fail(f"{name}: the SQS mapping does not carry {const} ({value!r}) as the profile-updater reads it")
        schemas = body.get("components", {}).get("schemas", {})
        if not schemas:
            continue
        # The model equals the document's schemas (descriptions aside) ...
        def bare(node):
            if isinstance(node, dict):
                return {k: bare(v) for k, v in node.items() if k != "description"}
            if isinstance(node, list):
                return [bare(v) for v in node]
            return node
        for schema_name, schema in schemas.items():
            checked += 1
            if bare(schema) != bare(spec["components"]["schemas"].get(schema_name)):
                fail(f"{name}: model {schema_name} differs from infra/openapi.yaml's")
        # ... and, read as API Gateway reads models (JSON Schema draft 4), it takes the samples
        # and refuses what the profile-updater would refuse anyway.
        from jsonschema import Draft4Validator
        root = {"components": {"schemas": schemas}}
        batch = Draft4Validator({"$ref": "#/components/schemas/EventBatch", **root})
        good = json.loads((ROOT / "events" / "sqs" / "storefront-events-batch.json").read_text())["Records"]
        ev = {"event_id": "e1", "type": "view", "item_id": "sku-1", "timestamp": "2026-11-28T10:15:00Z"}
        bad = {
            "no events": {},
            "empty": {"events": []},
            "51 events": {"events": [ev] * 51},
            "another top-level field": {"events": [ev], "user": "u"},
            "unknown event field": {"events": [{**ev, "colour": "red"}]},
            "unknown type": {"events": [{**ev, "type": "teleport"}]},
            "no timestamp": {"events": [{k: v for k, v in ev.items() if k != "timestamp"}]},
            "not RFC 3339": {"events": [{**ev, "timestamp": "yesterday"}]},
            "id with |": {"events": [{**ev, "event_id": "a|b"}]},
            "id too long": {"events": [{**ev, "item_id": "x" * 129}]},
            "negative value": {"events": [{**ev, "value": -1}]},
            "query too long": {"events": [{**ev, "type": "search", "query": "q" * 513}]},
        }
        for record in good:
            checked += 1
            errors = [e.message for e in batch.iter_errors(json.loads(record["body"]))]
            if errors:
                fail(f"{name}: the sample batch {record['messageId']} is refused: {errors[:2]}")
        for what, doc in bad.items():
            checked += 1
            if batch.is_valid(doc):
                fail(f"{name}: the model accepts a batch with {what}")
        checked += 1
        if not batch.is_valid({"events": [ev] * 50}):
            fail(f"{name}: the model refuses a full batch of 50")
    want_of = {"public": {("StorefrontApi", None)}, "events": {("StorefrontEventsApi", None)},
               "staff": {("StaffApi", "AWS_IAM")},
               "staff+console": {("StaffApi", "AWS_IAM"), ("ConsoleApi", "JWT")},
               "console": {("ConsoleApi", None)}}
    for route, a in access.items():
        if route not in deployed:
            continue
        checked += 1
        got = {(api, auth) for api, auth, _ in deployed[route]}
        if got != want_of[a]:
            fail(f"route {route} ({a}): deployed as {sorted(got, key=str)}, expected {sorted(want_of[a], key=str)}")
    # The console's page and assets are HTML and scripts, not API: not in the OpenAPI document.
    api_routes = {r for r in code if access[r] != "console"}
    for what, (a, b) in {"code vs openapi.yaml": (api_routes, documented),
                         "code vs template": (set(code), set(deployed))}.items():
        checked += 1
        if a != b:
            fail(f"routes, {what}: only in the first {sorted(a - b)}, only in the second {sorted(b - a)}")
    for route, function in code.items():
        checked += 1
        served_by = {f for _, _, f in deployed.get(route, set())}
        if served_by - {function}:
            fail(f"route {route}: served by {function}, deployed on {sorted(served_by)}")
    # Every route has an API Gateway sample in events/apigw/ (the cargo-lambda test sends them);
    # a route API Gateway queues has one in events/sqs/ instead: the message it queues.
    sampled = set()
    for f in sorted((ROOT / "events" / "apigw").glob("*.json")):
        method, _, path = json.loads(f.read_text())["routeKey"].partition(" ")
        sampled.add((method, path))
    for f in sorted((ROOT / "events" / "sqs").glob("*.json")):
        for record in json.loads(f.read_text())["Records"]:
            origin = record.get("messageAttributes", {}).get("shopmind_origin", {}).get("stringValue")
            if origin == "storefront-api":
                sampled.update(r for r, a in access.items() if a == "events")
    checked += 1
    if set(code) - sampled:
        fail(f"routes without a sample in events/apigw/: {sorted(set(code) - sampled)}")

    # The archive's Glue table (SignalsEngine=athena) has the columns the DuckDB check of its
    # SQL reads the archive with, and the event contract's fields.
    sys.path.insert(0, str(ROOT / "infra" / "scripts"))
    import duckdb_signals

    glue_types = {"string": "VARCHAR", "double": "DOUBLE"}
    table = resources["EventsTable"]["Properties"]["TableInput"]
    columns = {c["Name"]: glue_types.get(c["Type"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]}
    checked += 1
    if columns != duckdb_signals.COLUMNS:
        fail(f"EventsTable columns {columns} differ from duckdb_signals.COLUMNS {duckdb_signals.COLUMNS}")
    event_rs = (ROOT / "shared" / "profiles" / "src" / "event.rs").read_text()
    contract = event_rs[event_rs.index("pub struct BehaviourEvent"):]
    contract = contract[:contract.index("\n}")]
    fields = re.findall(r"pub (\w+):", contract)
    fields = ["type" if f == "kind" else f for f in fields]
    checked += 1
    if sorted(fields) != sorted(columns):
        fail(f"EventsTable columns {sorted(columns)} differ from BehaviourEvent's fields {sorted(fields)}")
    checked += 1
    if [k["Name"] for k in table["PartitionKeys"]] != ["dt"]:
        fail("EventsTable must be partitioned by dt alone (the archive's events/dt=YYYY-MM-DD/)")

    if failures:
        sys.exit(f"\ncheck_template: {len(failures)} of {checked} checks failed")
    print(f"check_template: cfn-lint clean; {checked} checks passed")


if __name__ == "__main__":
    main()

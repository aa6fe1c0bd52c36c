"""Follows every link openapi.json declares, once each, through Schemathesis' own checks.

Called by tests/e2e/schemathesis.test.mjs with the worker's URL. For each link of each 2xx answer
(create, rotate, renew and reauth: eight links each), it makes a real session, calls the link's
source operation until it answers that status, resolves the link's parameters from the answer
(`$response.header.<name>` or `$response.body#/<pointer>`), and calls the target operation with
them. Every call is a Schemathesis `Case` validated with every check the CLI runs (`checks all`,
the same config file): status documented, headers and body conforming to the schema. The target
must answer 2xx: a link that leads nowhere is a broken document.

Random search in the CLI's stateful phase still explores chains of links with generated data; this
walk is what makes "every link followed" certain, instead of growing the random budget until
search happens to find each one.

Prints one line per link (`<METHOD> <path> -> [<status>] <link name>`), then `walked <n> links`.
"""

import sys

import schemathesis
from schemathesis.config import SchemathesisConfig

base = sys.argv[1]
config = SchemathesisConfig.from_path(sys.argv[2])
schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)
raw = schema.raw_schema

# A request each operation accepts from a live session: the smallest one the contract allows.
BODIES = {
    "createSession": {"walk": 0},
    "replaceSession": {"walk": 1},
    "mergeIntoSession": {"walk": 2},
}
operations = {}
for path, item in raw["paths"].items():
    for method, operation in item.items():
        if isinstance(operation, dict) and "operationId" in operation:
            operations[operation["operationId"]] = (method.upper(), path, operation)


def call(operation_id, path_parameters=None):
    method, path, _ = operations[operation_id]
    operation = schema[path][method]
    body = BODIES.get(operation_id)
    case = operation.Case(
        path_parameters=path_parameters or {},
        **({"body": body, "media_type": "application/json"} if body is not None else {}),
    )
    return case.call_and_validate(base_url=base)


def resolve(expression, response):
    if expression.startswith("$response.header."):
        # Schemathesis keeps a response's headers by lower-case name, each a list of values.
        return response.headers[expression[len("$response.header."):].lower()][0]
    if expression.startswith("$response.body#/"):
        value = response.json()
        for part in expression[len("$response.body#/"):].split("/"):
            value = value[part]
        return value
    raise SystemExit(f"a link parameter this walk cannot resolve: {expression}")


def responses_of(operation):
    for status, answer in operation.get("responses", {}).items():
        if "$ref" in answer:
            answer = raw["components"]["responses"][answer["$ref"].split("/")[-1]]
        yield status, answer


walked = 0
for source_id, (method, path, operation) in operations.items():
    for status, answer in responses_of(operation):
        for name, link in answer.get("links", {}).items():
            created = call("createSession")
            assert created.status_code == 201, created.text
            source = created
            if source_id != "createSession":
                source = call(source_id, {"id": resolve("$response.header.Session-Id", created)})
            assert str(source.status_code) == status, f"{source_id} answered {source.status_code}, not {status}"
            parameters = {key: resolve(value, source) for key, value in link.get("parameters", {}).items()}
            target = call(link["operationId"], parameters)
            assert 200 <= target.status_code < 300, f"{name} from {source_id}: {target.status_code} {target.text}"
            print(f"{method} {path} -> [{status}] {name}", flush=True)
            walked += 1
print(f"walked {walked} links")

"""The explorer's OpenAPI description says what the code does (issue 30): every refusal documented, the checks the
code makes stated in the schema where they fit, OPTIONS answered, and schemathesis, run against /openapi.json of
an app over a tiny run, finds no server error and no answer the schema does not describe. Its requests carry
valid images too (a data-url strategy and the schema's examples), so they reach the model, not only the checks."""

from __future__ import annotations

import base64
import io
from collections import Counter

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cnnlab.serve import create_app

pytestmark = pytest.mark.usefixtures("one_thread")
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """One mlp run after one epoch on a fake MNIST of 200 images."""
    from conftest import make_mnist

    import cnnlab

    data = make_mnist(tmp_path_factory.mktemp("schema-data"), n_train=200, n_test=50)
    runs = tmp_path_factory.mktemp("schema-runs")
    cnnlab.train(
        "mlp",
        "mnist",
        data_root=str(data),
        out=runs,
        epochs=1,
        batch_size=50,
        precision="fp32",
        progress=False,
        log=lambda line: None,
    )
    return runs


@pytest.fixture(scope="module")
def app(tiny_runs):
    return create_app(tiny_runs)


@pytest.fixture(scope="module")
def openapi(app):
    return TestClient(app, base_url=LOCAL).get("/openapi.json").json()


def test_every_endpoint_documents_its_refusals(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "404", "413", "422"):
                answer = operation["responses"].get(status)
                assert answer, (method, path, status)
                assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/Refusal")


def parameter(openapi, path, name) -> dict:
    return next(p["schema"] for p in openapi["paths"][path]["get"]["parameters"] if p["name"] == name)


def test_the_checks_in_code_are_in_the_schema(openapi):
    dilation = parameter(openapi, "/api/convolution/sizes", "dilation")
    assert (dilation["minimum"], dilation["maximum"]) == (1, 4)
    image = openapi["components"]["schemas"]["ImageInput"]["properties"]["image"]
    assert image["minLength"] > len("data:;base64,") and image["format"] == "data-url"
    runs = openapi["components"]["schemas"]["CompareRequest"]["properties"]["runs"]
    assert runs["minItems"] == 1 and runs["maxItems"] == 12


def test_options_on_an_api_path_says_what_it_allows(app):
    client = TestClient(app, base_url=LOCAL)
    for path, allowed in (
        ("/api/explore/look", "OPTIONS, POST"),
        ("/api/monitor/runs/mlp-mnist/curves", "GET, OPTIONS"),
        ("/api/monitor/runs/x/confusion/1/2", "GET, OPTIONS"),
    ):
        answer = client.options(path)
        assert answer.status_code == 204 and answer.headers["allow"] == allowed, path
    missing = client.options("/api/no/such/thing")
    assert missing.status_code == 404 and "no API endpoint" in missing.json()["error"]


def png_data_url(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# Valid images for every `format: data-url` field: grey or RGB, 1 to 40 pixels a side, any content
schemathesis.openapi.format(
    "data-url",
    st.builds(
        lambda side, colour, seed: png_data_url(
            np.random.default_rng(seed).integers(0, 256, (side[0], side[1], 3) if colour else side, dtype=np.uint8)
        ),
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        st.booleans(),
        st.integers(0, 2**16),
    ),
)


@pytest.fixture(scope="module")
def served_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})


def aimed_at_the_run(case, real: bool) -> None:
    """Half the cases name the real run and one of its 10 classes, so that generated images reach its model (a
    random name is a 404, class 1191928 a 400)."""
    if not real:
        return
    if isinstance(case.body, dict) and "run" in case.body:
        case.body["run"] = "mlp-mnist"
        if isinstance(case.body.get("target"), int):
            case.body["target"] %= 10
    for parameters in (case.path_parameters, case.query):
        for key in ("name", "run"):
            if parameters and key in parameters:
                parameters[key] = "mlp-mnist"


# No 5xx, and every answer as documented: its status, content type, headers and body. Not "positive data
# acceptance": a schema-valid request may still be refused with a documented 400 for what no static schema can
# say (class 12 of a 10-class run, bytes that are no image)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(served_schema):
    """Each operation: a dozen generated requests (schema examples first), half aimed at the real run; every
    answer checked by schemathesis."""
    failures, reached = {}, Counter()
    for result in served_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), real=st.booleans())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case, real):
            aimed_at_the_run(case, real)
            response = case.call_and_validate(headers={"Host": "127.0.0.1"}, checks=CHECKS)
            if response.status_code == 200:
                reached[operation.label] += 1  # noqa: B023   check() runs in this same iteration

        try:
            check()
        except Exception as error:  # noqa: BLE001   every operation's failure, not only the first
            failures[operation.label] = f"{error.__class__.__name__}: {str(error)[:2000]}"
    assert not failures, "\n\n".join(f"{label}\n{why}" for label, why in failures.items())
    # valid images reached the model and the kernel playground, not only the checks in front of them
    for label in ("POST /api/explore/look", "POST /api/explore/attribution", "POST /api/pictures"):
        assert reached[label] >= 1, (label, dict(reached))

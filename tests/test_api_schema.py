"""OpenAPI document and Swagger UI, and a property-based fuzz of every documented operation.

The fuzz uses hypothesis directly. Each example runs inside a savepoint of the
test's transaction that is rolled back afterwards, and the storage root is
emptied, so examples cannot see each other's jobs, files or idempotency keys.
"""

import io
import json
import re
import string
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.contrib.staticfiles import finders
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.throttles import LoginEmailThrottle, LoginIPThrottle
from tests.factories import DEFAULT_PASSWORD, FileArtifactFactory, JobFactory
from transcriptions.models import ArtifactType, JobStatus

FIXTURES = Path(__file__).parent / "fixtures"
WAV = (FIXTURES / "speech_en.wav").read_bytes()
MP3 = (FIXTURES / "speech_en.mp3").read_bytes()

# Every operation of the API, as the schema names it; the fuzz below covers each one.
OPERATIONS = {
    ("/api/auth/token", "post"),
    ("/api/auth/token", "delete"),
    ("/api/health", "get"),
    ("/api/ready", "get"),
    ("/api/models", "get"),
    ("/api/transcriptions", "get"),
    ("/api/transcriptions", "post"),
    ("/api/transcriptions/{id}", "get"),
    ("/api/transcriptions/{id}", "delete"),
    ("/api/transcriptions/{id}/artifacts/{artifact_type}", "get"),
}
PUBLIC_OPERATIONS = {("/api/auth/token", "post"), ("/api/health", "get"), ("/api/ready", "get")}
ERROR_CODES = {
    ("/api/auth/token", "post"): {"400", "401", "429"},
    ("/api/auth/token", "delete"): {"401"},
    ("/api/ready", "get"): {"503"},
    ("/api/models", "get"): {"401"},
    ("/api/transcriptions", "get"): {"400", "401"},
    ("/api/transcriptions", "post"): {"400", "401", "403", "413", "429"},
    ("/api/transcriptions/{id}", "get"): {"401", "404"},
    ("/api/transcriptions/{id}", "delete"): {"401", "404", "409"},
    ("/api/transcriptions/{id}/artifacts/{artifact_type}", "get"): {"401", "404"},
}
METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def schema() -> dict:
    response = APIClient().get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def operation(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


# === /api/schema ==========================================================================


def test_schema_is_an_openapi_3_json_document():
    response = APIClient().get("/api/schema", {"format": "json"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Transcription service API"


def test_schema_is_negotiated_by_accept_header():
    response = APIClient().get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_schema_defaults_to_yaml():
    response = APIClient().get("/api/schema")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_schema_documents_every_operation_once(schema):
    documented = {(path, method) for path, ops in schema["paths"].items() for method in ops if method in METHODS}

    assert documented == OPERATIONS


def test_schema_paths_have_no_optional_slash_or_regex(schema):
    for path in schema["paths"]:
        assert not path.endswith("/"), path
        assert "?" not in path and "(" not in path, path


@pytest.mark.parametrize("path, method", sorted(ERROR_CODES))
def test_schema_documents_error_responses_with_the_error_body(schema, path, method):
    responses = operation(schema, path, method)["responses"]

    assert ERROR_CODES[(path, method)] <= set(responses)
    for code in ERROR_CODES[(path, method)] - {"503"}:
        body = responses[code]["content"]["application/json"]["schema"]
        assert resolve(schema, body)["properties"]["detail"]["type"] == "string"


def test_schema_documents_the_multipart_upload(schema):
    body = operation(schema, "/api/transcriptions", "post")["requestBody"]

    assert set(body["content"]) == {"multipart/form-data"}
    upload = resolve(schema, body["content"]["multipart/form-data"]["schema"])
    assert upload["required"] == ["audio"]
    assert upload["properties"]["audio"] == {
        "type": "string",
        "format": "binary",
        "description": upload["properties"]["audio"]["description"],
    }
    assert set(upload["properties"]) == {"audio", "model_name", "language", "mode"}
    mode = upload["properties"]["mode"]
    assert mode["default"] == "transcribe"
    assert resolve(schema, mode["allOf"][0])["enum"] == ["transcribe", "translate"]


def test_schema_documents_the_idempotency_key_header(schema):
    parameters = operation(schema, "/api/transcriptions", "post")["parameters"]

    assert [(p["name"], p["in"]) for p in parameters] == [("Idempotency-Key", "header")]


def test_schema_documents_the_created_jobs_location_header(schema):
    created = operation(schema, "/api/transcriptions", "post")["responses"]["201"]

    assert "Location" in created["headers"]
    assert (
        resolve(schema, created["content"]["application/json"]["schema"]) == schema["components"]["schemas"]["JobOut"]
    )


def test_schema_documents_list_paging_parameters_and_headers(schema):
    list_op = operation(schema, "/api/transcriptions", "get")
    parameters = {p["name"]: p for p in list_op["parameters"]}

    assert set(parameters) == {"status", "limit", "offset", "before"}
    assert all(p["in"] == "query" for p in parameters.values())
    limit = parameters["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)
    assert parameters["offset"]["schema"]["minimum"] == 0
    assert parameters["status"]["schema"]["enum"] == JobStatus.values
    assert parameters["before"]["schema"]["format"] == "uuid"
    assert {"X-Total-Count", "Link"} <= set(list_op["responses"]["200"]["headers"])
    assert list_op["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"


def test_schema_documents_the_throttle_retry_after_header(schema):
    throttled = operation(schema, "/api/auth/token", "post")["responses"]["429"]

    assert "Retry-After" in throttled["headers"]


def test_schema_documents_artifact_types_and_download_headers(schema):
    download = operation(schema, "/api/transcriptions/{id}/artifacts/{artifact_type}", "get")
    parameters = {p["name"]: p for p in download["parameters"]}

    assert sorted(resolve(schema, parameters["artifact_type"]["schema"])["enum"]) == sorted(ArtifactType.values)
    assert "Content-Disposition" in download["responses"]["200"]["headers"]


def test_schema_jobout_has_every_field(schema):
    job_out = schema["components"]["schemas"]["JobOut"]

    assert {
        "id",
        "status",
        "model_name",
        "mode",
        "language",
        "audio_duration_ms",
        "processing_time_ms",
        "error_message",
        "created_at",
        "updated_at",
        "artifacts",
    } <= set(job_out["properties"])
    artifact = resolve(schema, job_out["properties"]["artifacts"]["items"])
    assert set(artifact["properties"]) == {"type", "size_bytes", "url"}


def test_schema_marks_which_operations_need_a_bearer_token(schema):
    schemes = schema["components"]["securitySchemes"]
    assert list(schemes) == ["bearerToken"]
    assert (schemes["bearerToken"]["type"], schemes["bearerToken"]["scheme"]) == ("http", "bearer")
    for path, method in OPERATIONS:
        security = operation(schema, path, method).get("security")
        if (path, method) in PUBLIC_OPERATIONS:
            assert not security or security == [{}], (path, method)
        else:
            assert security == [{"bearerToken": []}], (path, method)


def test_schema_health_documents_healthout(schema):
    ok = operation(schema, "/api/health", "get")["responses"]["200"]

    body = resolve(schema, ok["content"]["application/json"]["schema"])
    assert set(body["properties"]) == {"db_ok", "redis_ok", "version", "time"}


# === /api/docs ==============================================================================


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_docs_serve_swagger_ui_html():
    response = APIClient().get("/api/docs")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert 'id="swagger-ui"' in response.content.decode()
    assert "/api/schema" in response.content.decode()


def test_docs_load_no_asset_from_a_cdn():
    html = APIClient().get("/api/docs").content.decode()

    for host in ("cdn.jsdelivr", "unpkg", "cdnjs", "googleapis", "cloudflare"):
        assert host not in html
    assert not [url for url in _asset_urls(html) if "//" in url]


def test_docs_assets_are_the_projects_own_static_files(settings):
    html = APIClient().get("/api/docs").content.decode()
    static_prefix = "/" + settings.STATIC_URL.lstrip("/")
    assets = [url for url in _asset_urls(html) if url.startswith(static_prefix)]

    assert len(assets) >= 3  # stylesheet, bundle, preset
    assert len(assets) == len(_asset_urls(html))
    for url in assets:
        assert finders.find(url.removeprefix(static_prefix)), f"{url} is not a local static file"


# === Property-based fuzz of the documented operations =======================================
# Whatever the input: no 5xx, every error is a JSON body with a "detail", and the
# status is one the schema documents for that operation.

FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT = st.text(max_size=40)
SEGMENT = st.text(st.characters(blacklist_characters="/", blacklist_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..")
)
LATIN1_TEXT = st.text(st.characters(max_codepoint=255, blacklist_categories=["Cs"]), max_size=300)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, 50, 200, 201, 2**62, 2**63, -1])
).map(str)
ODD_NUMBERS = st.sampled_from(["", " 5 ", "1.0", "1.5", "1e3", "1e400", "NaN", "inf", "0x10", "١٢", "\x00", "+5", "05"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def optional(strategy):
    return st.one_of(st.none(), strategy)


@pytest.fixture
def fuzz_world(schema, licensed_user, other_user, monkeypatch, settings):
    """Jobs of the user (one per status, one with audio) and of another user, a token, no login throttle."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    licensed_user.set_password(DEFAULT_PASSWORD)
    licensed_user.save(update_fields=["password"])
    monkeypatch.setattr(LoginIPThrottle, "rate", "100000/min", raising=False)
    monkeypatch.setattr(LoginEmailThrottle, "rate", "100000/min", raising=False)
    jobs = [JobFactory(owner=licensed_user, status=status) for status in JobStatus.values]
    jobs.append(JobFactory(owner=other_user))
    name = default_storage.save(f"jobs/{jobs[0].pk}/audio.wav", ContentFile(WAV))
    FileArtifactFactory(job=jobs[0], type=ArtifactType.AUDIO, path=name, size_bytes=len(WAV))
    _, token = AuthToken.objects.create(user=licensed_user)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    documented = {
        (path, method): {int(code) for code in op["responses"]}
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    }
    return {
        "client": client,
        "job_ids": [str(j.pk) for j in jobs],
        "email": licensed_user.email,
        "documented": documented,
        "media": Path(settings.MEDIA_ROOT),
    }


def call_isolated(world: dict, operation_key: tuple[str, str], send, client: APIClient | None = None):
    """Send one request inside a savepoint that is rolled back, drop new files, and check the answer."""
    before = {p for p in world["media"].rglob("*")}
    with transaction.atomic():
        response = send(client or world["client"])
        transaction.set_rollback(True)
    if response.streaming:
        response.close()
    for path in sorted(set(world["media"].rglob("*")) - before, reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    answer = (response.status_code, b"" if response.streaming else response.content[:300])
    assert response.status_code < 500, answer
    assert response.status_code in world["documented"][operation_key], answer
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json", answer
        assert isinstance(json.loads(response.content)["detail"], str), answer
    return response


def test_fuzz_covers_every_documented_operation(schema):
    fuzzed = {
        ("/api/transcriptions", "get"),  # test_fuzz_list_query
        ("/api/transcriptions/{id}", "get"),  # test_fuzz_job_routes
        ("/api/transcriptions/{id}", "delete"),
        ("/api/transcriptions/{id}/artifacts/{artifact_type}", "get"),
        ("/api/transcriptions", "post"),  # test_fuzz_upload
        ("/api/auth/token", "post"),  # test_fuzz_token_body
        ("/api/auth/token", "delete"),  # test_fuzz_authorization_header
        ("/api/models", "get"),
        ("/api/health", "get"),
        ("/api/ready", "get"),
    }
    documented = {(path, method) for path, ops in schema["paths"].items() for method in ops if method in METHODS}

    assert fuzzed == documented


@pytest.mark.django_db
def test_fuzz_list_query(fuzz_world):
    names = st.one_of(st.sampled_from(["limit", "offset", "status", "before"]), TEXT)
    values = st.one_of(
        NUMBERS,
        ODD_NUMBERS,
        TEXT,
        st.sampled_from(JobStatus.values + ["DONE", "queued ", "done\x00"]),
        st.sampled_from(fuzz_world["job_ids"]),
        st.uuids().map(str),
    )

    @FUZZ
    @given(query=st.lists(st.tuples(names, values), max_size=6), slash=st.booleans())
    def run(query, slash):
        url = "/api/transcriptions" + ("/" if slash else "") + "?" + urlencode(query)
        response = call_isolated(fuzz_world, ("/api/transcriptions", "get"), lambda c: c.get(url))
        if response.status_code == 200:
            assert isinstance(response.json(), list)
            assert int(response["X-Total-Count"]) >= len(response.json())

    run()


@pytest.mark.django_db
def test_fuzz_job_routes(fuzz_world):
    ids = st.one_of(
        st.sampled_from(fuzz_world["job_ids"]),
        st.uuids().map(str),
        st.text(string.hexdigits + "-", min_size=1, max_size=40),
        SEGMENT,
    )

    @FUZZ
    @given(
        job_id=ids,
        artifact_type=st.one_of(st.sampled_from(ArtifactType.values), SEGMENT),
        route=st.sampled_from(["detail", "delete", "artifact"]),
        slash=st.booleans(),
    )
    def run(job_id, artifact_type, route, slash):
        url = f"/api/transcriptions/{quote(job_id, safe='')}"
        operation_key = ("/api/transcriptions/{id}", "delete" if route == "delete" else "get")
        if route == "artifact":
            url += f"/artifacts/{quote(artifact_type, safe='')}"
            operation_key = ("/api/transcriptions/{id}/artifacts/{artifact_type}", "get")
        url += "/" if slash else ""
        call_isolated(fuzz_world, operation_key, lambda c: getattr(c, operation_key[1])(url))

    run()


@pytest.mark.django_db
def test_fuzz_upload(fuzz_world):
    audio = st.one_of(
        st.binary(max_size=4096),
        st.sampled_from([WAV, MP3]),
        st.integers(min_value=0, max_value=len(WAV)).map(lambda n: WAV[:n]),
        st.integers(min_value=0, max_value=len(MP3)).map(lambda n: MP3[:n]),
        st.tuples(st.integers(0, len(WAV) - 1), st.binary(min_size=1, max_size=64)).map(
            lambda cut: WAV[: cut[0]] + cut[1] + WAV[cut[0] + len(cut[1]) :]
        ),
    )
    form = st.fixed_dictionaries(
        {},
        optional={
            "model_name": st.one_of(st.sampled_from(["tiny.en", "small", "", "tiny"]), TEXT),
            "language": st.one_of(st.sampled_from(["en", "EN", "es", "zz", "", "eng"]), TEXT),
            "mode": st.one_of(st.sampled_from(["transcribe", "translate"]), TEXT),
        },
    )

    @FUZZ
    @given(
        content=optional(audio),
        filename=st.text(min_size=1, max_size=80).filter(lambda s: "\x00" not in s),
        fields=form,
        key=optional(LATIN1_TEXT),
    )
    def run(content, filename, fields, key):
        data = dict(fields)
        if content is not None:
            data["audio"] = io.BytesIO(content)
            data["audio"].name = filename
        headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
        call_isolated(
            fuzz_world,
            ("/api/transcriptions", "post"),
            lambda c: c.post("/api/transcriptions", data, format="multipart", **headers),
        )

    run()


@pytest.mark.django_db
def test_fuzz_token_body(fuzz_world):
    email = fuzz_world["email"]
    bodies = st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries(
            {},
            optional={
                "email": st.one_of(st.just(email), st.just(email.upper()), st.emails(), TEXT, JSON_VALUES),
                "password": st.one_of(st.just(DEFAULT_PASSWORD), LATIN1_TEXT, JSON_VALUES),
            },
        ),
    )

    @FUZZ
    @given(body=bodies, encoding=st.sampled_from(["json", "raw", "form"]), raw=st.binary(max_size=200))
    @example(body={"email": email, "password": "wrong"}, encoding="json", raw=b"")
    def run(body, encoding, raw):
        def send(c):
            if encoding == "json":
                return c.post("/api/auth/token", json.dumps(body), content_type="application/json")
            if encoding == "raw":
                return c.post("/api/auth/token", raw, content_type="application/json")
            fields = body if isinstance(body, dict) else {"email": str(body)}
            fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
            return c.post("/api/auth/token", urlencode(fields), content_type="application/x-www-form-urlencoded")

        call_isolated(fuzz_world, ("/api/auth/token", "post"), send, client=APIClient(raise_request_exception=False))

    run()


@pytest.mark.django_db
def test_fuzz_authorization_header(fuzz_world):
    routes = st.sampled_from(
        [
            ("get", "/api/transcriptions", ("/api/transcriptions", "get")),
            ("get", "/api/models", ("/api/models", "get")),
            ("delete", "/api/auth/token", ("/api/auth/token", "delete")),
            ("get", f"/api/transcriptions/{fuzz_world['job_ids'][0]}", ("/api/transcriptions/{id}", "get")),
            ("get", "/api/health", ("/api/health", "get")),
            ("get", "/api/ready", ("/api/ready", "get")),
        ]
    )
    headers = st.one_of(
        LATIN1_TEXT,
        LATIN1_TEXT.map(lambda s: "Bearer " + s),
        st.text(string.hexdigits, max_size=80).map(lambda s: "Bearer " + s),
    )

    @FUZZ
    @given(route=routes, header=headers)
    @example(route=("get", "/api/models", ("/api/models", "get")), header="Bearer caf\u00e9")
    def run(route, header):
        method, url, operation_key = route
        api = APIClient(raise_request_exception=False)
        api.credentials(HTTP_AUTHORIZATION=header)

        response = call_isolated(fuzz_world, operation_key, lambda c: getattr(c, method)(url), client=api)

        # No generated header holds the real token.
        assert response.status_code == (200 if url in ("/api/health", "/api/ready") else 401), header

    run()

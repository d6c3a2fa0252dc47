# Licensed under the Apache License, Version 2.0.
"""
Credentials and project from a ``gcp_conn_id``, as the docs promise, with no network and no mocks.

Service-account keys are generated here (an RSA key, a real JSON key file layout); connections are
``AIRFLOW_CONN_<ID>`` variables, resolved by Airflow's own secrets backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import credentials as auth_credentials
from google.auth import impersonated_credentials
from google.oauth2 import service_account

from airflow.providers.resumable.hooks.dataproc import DEFAULT_SCOPES, ResumableDataprocHook


@pytest.fixture(scope="module")
def key_info() -> dict[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "key-project",
        "private_key_id": "abc123",
        "private_key": pem,
        "client_email": "runner@key-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, extras: dict[str, object]) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "google_cloud_platform", "extra": extras}),
    )


def test_keyfile_dict_gives_service_account_credentials_and_its_project(monkeypatch, key_info):
    _connection(monkeypatch, "gcp_key", {"keyfile_dict": json.dumps(key_info)})
    hook = ResumableDataprocHook("gcp_key")

    assert isinstance(hook.credentials, service_account.Credentials)
    assert hook.credentials.service_account_email == key_info["client_email"]
    assert hook.project_id == "key-project"
    assert list(hook.credentials.scopes) == list(DEFAULT_SCOPES)


def test_key_path_with_the_legacy_prefix_and_a_project_extra(monkeypatch, key_info, tmp_path: Path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key_info))
    _connection(
        monkeypatch,
        "gcp_path",
        {
            "extra__google_cloud_platform__key_path": str(key_file),
            "extra__google_cloud_platform__project": "conn-project",
            "scope": "https://www.googleapis.com/auth/cloud-platform, https://www.googleapis.com/auth/bigquery",
        },
    )
    hook = ResumableDataprocHook("gcp_path")

    assert isinstance(hook.credentials, service_account.Credentials)
    assert hook.project_id == "conn-project", "the project extra wins over the key's"
    assert len(hook.scopes) == 2


def test_no_key_uses_application_default_credentials(monkeypatch, key_info, tmp_path: Path):
    key_file = tmp_path / "adc.json"
    key_file.write_text(json.dumps(key_info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    _connection(monkeypatch, "gcp_adc", {})
    hook = ResumableDataprocHook("gcp_adc")

    assert isinstance(hook.credentials, service_account.Credentials)
    assert hook.project_id == "key-project"


def test_a_missing_default_connection_falls_back_to_adc_but_another_id_is_an_error(
    monkeypatch, key_info, tmp_path: Path
):
    key_file = tmp_path / "adc.json"
    key_file.write_text(json.dumps(key_info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)

    assert ResumableDataprocHook().project_id == "key-project"
    with pytest.raises(AirflowNotFoundException):
        _ = ResumableDataprocHook("no_such_connection").credentials


def test_impersonation_chain_targets_the_last_account_through_the_others(monkeypatch, key_info):
    _connection(monkeypatch, "gcp_imp", {"keyfile_dict": key_info})
    chain = ["hop@p.iam.gserviceaccount.com", "target@p.iam.gserviceaccount.com"]
    hook = ResumableDataprocHook("gcp_imp", impersonation_chain=chain)

    credentials = hook.credentials
    assert isinstance(credentials, impersonated_credentials.Credentials)
    assert credentials.service_account_email == "target@p.iam.gserviceaccount.com"
    assert credentials._delegates == ["hop@p.iam.gserviceaccount.com"]
    assert isinstance(credentials._source_credentials, service_account.Credentials)


@pytest.mark.parametrize("extra", ["credential_config_file", "key_secret_name", "impersonation_chain"])
def test_an_unsupported_extra_is_refused_by_name(monkeypatch, extra):
    _connection(monkeypatch, "gcp_bad", {extra: "something"})

    with pytest.raises(AirflowException, match=f"sets {extra}, which the resumable"):
        _ = ResumableDataprocHook("gcp_bad").credentials


def test_a_local_endpoint_uses_an_insecure_channel_and_anonymous_credentials(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_GCP_LOCAL",
        f"google-cloud-platform://?project=p&api_endpoint={quote('127.0.0.1:1', safe='')}&insecure=true",
    )
    hook = ResumableDataprocHook("gcp_local")

    assert isinstance(hook.credentials, auth_credentials.AnonymousCredentials)
    assert hook.endpoint_for("europe-west1") == "127.0.0.1:1"
    assert hook.project_id == "p"


def test_the_regional_endpoint_is_used_as_upstream(monkeypatch, key_info):
    _connection(monkeypatch, "gcp_region", {"keyfile_dict": key_info})
    hook = ResumableDataprocHook("gcp_region")

    assert hook.endpoint_for("europe-west1") == "europe-west1-dataproc.googleapis.com:443"
    assert hook.endpoint_for("global") is None

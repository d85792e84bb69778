"""SageMaker notebook instances through boto3's own ``sagemaker`` client against a live
Naiad server: each is a real JupyterLab (a Naiad managed notebook), taken through its
lifecycle with boto3's waiters, listed with SageMaker's filters, and opened in a browser
(httpx) through a presigned URL that logs it in; expired and altered links are refused."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

import naiad
from naiad.server import presigned
from naiad.testing.aws import AwsServer, aws  # noqa: F401 - the fixture
from naiad.testing.jupyter import delete_all_notebooks

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"
FAST = {"Delay": 1, "MaxAttempts": 180}


@pytest.fixture(scope="module")
def sm(aws: AwsServer) -> Iterator[Any]:  # noqa: F811
    """The module's sagemaker client; every notebook is deleted before the server stops
    (their JupyterLabs would outlive it)."""
    yield aws.client("sagemaker")
    client = naiad.Client(url=aws.url, token=aws.server.token)
    delete_all_notebooks(client)  # their JupyterLabs outlive the server


def refused(call: Any, **params: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value


def test_a_notebook_instance_through_its_lifecycle(sm: Any, aws: AwsServer) -> None:  # noqa: F811
    made = sm.create_notebook_instance(
        NotebookInstanceName="Explore-Data",
        InstanceType="ml.t3.medium",
        RoleArn=ROLE,
        VolumeSizeInGB=10,
        Tags=[{"Key": "team", "Value": "vision"}],
    )
    arn = made["NotebookInstanceArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:" + arn.split(":")[4] + (
        ":notebook-instance/explore-data"
    )
    assert sm.describe_notebook_instance(NotebookInstanceName="Explore-Data")[
        "NotebookInstanceStatus"
    ] in ("Pending", "InService")
    sm.get_waiter("notebook_instance_in_service").wait(
        NotebookInstanceName="Explore-Data", WaiterConfig=FAST
    )

    described = sm.describe_notebook_instance(NotebookInstanceName="explore-data")  # any case
    host = aws.url.removeprefix("http://")
    assert described["NotebookInstanceName"] == "Explore-Data"
    assert described["NotebookInstanceArn"] == arn
    assert described["NotebookInstanceStatus"] == "InService"
    assert described["Url"] == f"{host}/notebooks/explore-data/lab"  # SageMaker's: no scheme
    assert described["InstanceType"] == "ml.t3.medium"
    assert described["RoleArn"] == ROLE and described["VolumeSizeInGB"] == 10
    assert described["DirectInternetAccess"] == "Enabled"
    assert described["LastModifiedTime"] >= described["CreationTime"]
    assert "FailureReason" not in described
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "vision"}]
    # the same notebook in Naiad's own API
    notebook = naiad.Client(url=aws.url, token=aws.server.token).notebooks.get("explore-data")
    assert notebook.status == "InService" and "ml.t3.medium" in notebook.description

    # what a running notebook refuses, in AWS's words
    busy = refused(sm.delete_notebook_instance, NotebookInstanceName="Explore-Data")
    assert busy.response["Error"]["Code"] == "ValidationException"
    assert "Status (InService) not in ([Stopped, Failed])" in str(busy)
    again = refused(sm.start_notebook_instance, NotebookInstanceName="Explore-Data")
    assert "Unable to transition to (Pending)" in str(again)

    # a presigned URL opens JupyterLab in a browser that has no token
    url = sm.create_presigned_notebook_instance_url(
        NotebookInstanceName="Explore-Data", SessionExpirationDurationInSeconds=1800
    )["AuthorizedUrl"]
    assert url.startswith(f"{aws.url}/notebooks/explore-data/lab?authToken=")
    with httpx.Client(timeout=30) as browser:
        first = browser.get(url, headers={"accept": "text/html"})
        assert first.status_code == 303
        assert first.headers["location"] == "/notebooks/explore-data/lab"
        cookie = first.headers["set-cookie"]
        assert "naiad_token=" in cookie and "Max-Age=1800" in cookie and "HttpOnly" in cookie
        page = browser.get(url, headers={"accept": "text/html"}, follow_redirects=True)
        assert page.status_code == 200 and "JupyterLab" in page.text
        assert str(page.url) == f"{aws.url}/notebooks/explore-data/lab"
        contents = browser.get(f"{aws.url}/notebooks/explore-data/api/contents")
        assert contents.status_code == 200  # the session reaches its API too

    stale = presigned.sign(aws.server.token, "explore-data", 1800, now=time.time() - 600)
    token = url.partition("authToken=")[2]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    longer = token.replace(".1800.", ".43200.")
    for auth, why in ((stale, "expired"), (altered, "not valid"), (longer, "not valid")):
        link = f"{aws.url}/notebooks/explore-data/lab?authToken={auth}"
        answer = httpx.get(link, headers={"accept": "text/html"}, timeout=30)
        assert answer.status_code == 403 and why in answer.text, (why, answer.text)
        assert "set-cookie" not in answer.headers
    elsewhere = httpx.get(f"{aws.url}/notebooks/other/lab?authToken={token}", timeout=30)
    assert elsewhere.status_code == 403 and "not valid" in elsewhere.text  # for one notebook

    # stop, start, stop, delete, each with boto3's waiter
    sm.stop_notebook_instance(NotebookInstanceName="Explore-Data")
    sm.get_waiter("notebook_instance_stopped").wait(
        NotebookInstanceName="Explore-Data", WaiterConfig=FAST
    )
    twice = refused(sm.stop_notebook_instance, NotebookInstanceName="Explore-Data")
    assert "Status (Stopped) not in ([InService])" in str(twice)
    closed = httpx.get(f"{aws.url}/notebooks/explore-data/lab", cookies=None, timeout=30)
    assert closed.status_code == 401  # no session, no notebook
    sm.start_notebook_instance(NotebookInstanceName="Explore-Data")
    sm.get_waiter("notebook_instance_in_service").wait(
        NotebookInstanceName="Explore-Data", WaiterConfig=FAST
    )
    sm.stop_notebook_instance(NotebookInstanceName="Explore-Data")
    sm.get_waiter("notebook_instance_stopped").wait(
        NotebookInstanceName="Explore-Data", WaiterConfig=FAST
    )
    sm.delete_notebook_instance(NotebookInstanceName="Explore-Data")
    sm.get_waiter("notebook_instance_deleted").wait(
        NotebookInstanceName="Explore-Data", WaiterConfig=FAST
    )
    gone = refused(sm.describe_notebook_instance, NotebookInstanceName="Explore-Data")
    assert gone.response["Error"] == {"Code": "ValidationException", "Message": "RecordNotFound"}
    assert not (aws.server.home / "notebooks" / "explore-data").exists()


def test_listing_filters_sorts_and_pages(sm: Any) -> None:
    for name in ("list-alpha", "list-beta"):
        sm.create_notebook_instance(
            NotebookInstanceName=name, InstanceType="ml.m5.xlarge", RoleArn=ROLE
        )
    for name in ("list-alpha", "list-beta"):
        sm.get_waiter("notebook_instance_in_service").wait(
            NotebookInstanceName=name, WaiterConfig=FAST
        )
    sm.stop_notebook_instance(NotebookInstanceName="list-beta")
    sm.get_waiter("notebook_instance_stopped").wait(
        NotebookInstanceName="list-beta", WaiterConfig=FAST
    )

    def names(**params: Any) -> list[str]:
        listed = sm.list_notebook_instances(**params)["NotebookInstances"]
        return [n["NotebookInstanceName"] for n in listed]

    assert names(NameContains="list-") == ["list-alpha", "list-beta"]  # by name, ascending
    assert names(NameContains="LIST", SortOrder="Descending") == ["list-beta", "list-alpha"]
    assert names(NameContains="list-", StatusEquals="Stopped") == ["list-beta"]
    assert names(NameContains="list-", StatusEquals="InService") == ["list-alpha"]
    assert names(NameContains="list-", SortBy="CreationTime", SortOrder="Descending") == [
        "list-beta",
        "list-alpha",
    ]
    assert names(NameContains="list-", DefaultCodeRepositoryContains="repo") == []
    summary = sm.list_notebook_instances(NameContains="alpha")["NotebookInstances"][0]
    assert summary["InstanceType"] == "ml.m5.xlarge"
    assert summary["NotebookInstanceStatus"] == "InService"
    assert summary["Url"].endswith("/notebooks/list-alpha/lab")
    paginator = sm.get_paginator("list_notebook_instances")
    pages = list(paginator.paginate(NameContains="list-", PaginationConfig={"PageSize": 1}))
    assert [len(p["NotebookInstances"]) for p in pages] == [1, 1]
    future = sm.list_notebook_instances(CreationTimeAfter=time.time() + 60)
    assert future["NotebookInstances"] == []

    sm.stop_notebook_instance(NotebookInstanceName="list-alpha")
    for name in ("list-alpha", "list-beta"):
        sm.get_waiter("notebook_instance_stopped").wait(
            NotebookInstanceName=name, WaiterConfig=FAST
        )
        sm.delete_notebook_instance(NotebookInstanceName=name)
    for name in ("list-alpha", "list-beta"):
        sm.get_waiter("notebook_instance_deleted").wait(
            NotebookInstanceName=name, WaiterConfig=FAST
        )


def test_refusals(sm: Any) -> None:
    missing = refused(sm.describe_notebook_instance, NotebookInstanceName="nobody")
    assert missing.response["Error"] == {"Code": "ValidationException", "Message": "RecordNotFound"}
    for call in (
        sm.stop_notebook_instance,
        sm.start_notebook_instance,
        sm.delete_notebook_instance,
        sm.create_presigned_notebook_instance_url,
    ):
        assert "RecordNotFound" in str(refused(call, NotebookInstanceName="nobody"))

    base = {"InstanceType": "ml.t3.medium", "RoleArn": ROLE}
    cases = [
        ({"NotebookInstanceName": "bad--", **base}, "is not valid"),
        ({"NotebookInstanceName": "x", "InstanceType": "ml.nope", "RoleArn": ROLE}, "ml.nope"),
        (
            {"NotebookInstanceName": "x", "DefaultCodeRepository": "https://git.example/r", **base},
            "DefaultCodeRepository is not supported",
        ),
        (
            {"NotebookInstanceName": "x", "LifecycleConfigName": "autostop", **base},
            "LifecycleConfigName is not supported",
        ),
    ]
    for params, message in cases:
        error = refused(sm.create_notebook_instance, **params)
        assert error.response["Error"]["Code"] == "ValidationException"
        assert message in error.response["Error"]["Message"]

    sm.create_notebook_instance(NotebookInstanceName="Once", **base)
    duplicate = refused(sm.create_notebook_instance, NotebookInstanceName="ONCE", **base)
    assert "Cannot create a duplicate Notebook Instance" in str(duplicate)
    pending = refused(sm.delete_notebook_instance, NotebookInstanceName="once")
    assert "not in ([Stopped, Failed])" in str(pending)
    too_long = refused(
        sm.create_presigned_notebook_instance_url,
        NotebookInstanceName="Once",
        SessionExpirationDurationInSeconds=50_000,
    )
    assert "at most 43200" in str(too_long)
    sm.get_waiter("notebook_instance_in_service").wait(
        NotebookInstanceName="Once", WaiterConfig=FAST
    )
    sm.stop_notebook_instance(NotebookInstanceName="Once")
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName="Once", WaiterConfig=FAST)
    sm.delete_notebook_instance(NotebookInstanceName="Once")

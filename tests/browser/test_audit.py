"""The audit log in the console: the writes made, newest first, filtered by actor, and a
refused write marked."""

import httpx
import pytest

import naiad
from naiad.testing.live import LiveServer

from .conftest import expect

pytestmark = pytest.mark.browser


def test_audit_page_lists_and_filters_writes(page, live: LiveServer, client: naiad.Client) -> None:  # type: ignore[no-untyped-def]
    client.experiments.create("audit-page")
    refused = httpx.post(f"{live.url}/login", data={"token": "not-it"})
    assert refused.status_code == 401
    page.goto("/#/audit")
    expect(page.locator("main h1")).to_have_text("Audit log")
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("table.audit")).to_contain_text("/api/v1/experiments")
    failed = page.locator("table.audit tr.refused", has_text="/login")
    expect(failed.first).to_contain_text("anonymous")
    page.get_by_label("Actor").fill("anonymous")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit")).not_to_contain_text("/api/v1/experiments")
    for actor in page.locator("table.audit tbody tr td:nth-child(2)").all_text_contents():
        assert actor == "anonymous"
    assert "actor=anonymous" in page.url
    expect(page.locator(".top nav a[data-section='audit']")).to_have_attribute(
        "aria-current", "page"
    )

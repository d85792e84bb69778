"""Any width, either colour scheme, the keyboard, and routes the console does not know."""

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser

FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def test_unknown_routes_and_api_errors_read_as_sentences(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/no/such/page")
    expect(page.locator("main h1")).to_have_text("Nothing here")
    page.goto("/#/runs/0123456789abcdef")
    expect(page.get_by_role("alert")).to_contain_text("No run with id")
    page.goto("/#/compare?runs=one")
    expect(page.locator("main")).to_contain_text("Pick 2 to 20 runs")


def test_phone_width_and_dark_scheme(page, world, shot) -> None:  # type: ignore[no-untyped-def]
    phone = page
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.emulate_media(color_scheme="dark")
    for route in ("#/experiments/sweep", f"#/runs/{world['a']}", "#/jobs", "#/models"):
        phone.goto(f"/{route}")
        expect(phone.locator("main h1")).to_be_visible()
        phone.wait_for_timeout(200)
        assert phone.evaluate(FITS), f"{route} is wider than a phone"
    background = phone.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"  # the dark palette, from prefers-color-scheme
    phone.goto(f"/#/runs/{world['a']}")
    expect(phone.locator(".plot[data-rendered]").first).to_be_visible()
    shot(phone, "phone-dark")


def test_keyboard_reaches_the_navigation_and_shows_focus(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/experiments")
    expect(page.locator("main h1")).to_be_visible()
    page.locator("body").focus()
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent.trim()"))
        if seen[-1] == "Jobs":
            break
    assert seen[-1] == "Jobs", seen
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_have_text("Jobs")

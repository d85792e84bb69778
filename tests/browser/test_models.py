"""The registry and serving pages: versions, aliases, evaluations side by side with their
confusion matrices, lineage to the endpoint, and an endpoint's variants and live figures."""

import re

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def served(served_models) -> None:  # type: ignore[no-untyped-def]
    served_models.result(timeout=240)


def test_models_page(page, served, shot) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/models")
    expect(page.locator("main table")).to_contain_text("production → v1")
    page.get_by_role("link", name="classifier").click()
    expect(page.locator("main h1")).to_have_text("classifier")
    cards = page.locator(".evaluations .evaluation")
    expect(cards).to_have_count(2)
    for card in (cards.nth(0), cards.nth(1)):
        expect(card).to_contain_text("accuracy")
        expect(card.locator("table.matrix tbody tr")).to_have_count(3)  # low, mid, high
    lineage = page.locator("main table").first
    expect(lineage).to_contain_text("job train-classifier")  # job -> run -> v1 -> endpoint
    expect(lineage).to_contain_text("endpoint classify")
    shot(page, "models", full_page=True)
    page.locator("main table").first.get_by_role("link", name="classify").first.click()
    expect(page.locator("main h1")).to_contain_text("classify")


def test_endpoint_page(page, served, shot) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/endpoints")
    page.get_by_role("link", name="classify").click()
    expect(page.locator("main h1 .badge")).to_have_text("InService")
    variants = page.locator("table.variants").first
    expect(variants).to_contain_text("75%")
    expect(variants).to_contain_text("25%")
    expect(variants).to_contain_text("1 / 1 (1\N{EN DASH}2)")  # v2 autoscales within 1-2
    scaling = page.locator("section.autoscaling")
    expect(scaling).to_contain_text("classifier-v2")
    expect(scaling).to_contain_text("target in flight per replica")
    expect(scaling).to_contain_text("No autoscaling decisions yet.")
    expect(page.locator("table.figures")).to_contain_text("classifier-v1")
    label = page.locator(".k", has_text=re.compile("^requests$"))
    requests = page.locator(".kpi", has=label).locator(".v")
    expect(requests).to_have_text("30", timeout=10_000)
    for chart in page.locator(".charts .plot").all():
        expect(chart).to_have_attribute("data-rendered", "1")
    shot(page, "endpoint", full_page=True)
    # A long window charts the saved minutes: one point per step, at whole minutes.
    page.get_by_label("Window").select_option(label="last day")
    page.wait_for_function(
        """() => {
          const trace = (document.querySelector(".charts .plot").data || [])[0];
          return trace && trace.x.length > 0 && trace.x.every((d) => d.getSeconds() === 0)
            && trace.y.some((rps) => rps > 0);
        }""",
        timeout=10_000,
    )
    expect(page.locator(".alert")).to_have_count(0)


def test_an_evaluation_card_holds_its_whole_matrix_and_path(page, served) -> None:  # type: ignore[no-untyped-def]
    """Ten classes and a long data path at 1400 px: the matrix's last column and the whole
    path lie inside the card, with nothing scrolled out of sight."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto("/#/models/glyphs")
    card = page.locator(".evaluations .evaluation").first
    expect(card.locator("table.matrix tbody tr")).to_have_count(10)
    expect(card).to_contain_text("handwritten-digits-8x8-held-out-test-split-2024-06-final")
    outer = card.bounding_box()
    assert outer is not None

    def inside(box) -> bool:  # type: ignore[no-untyped-def]
        return (
            box is not None
            and box["x"] >= outer["x"]
            and box["x"] + box["width"] <= outer["x"] + outer["width"]
        )

    last_column = card.locator("table.matrix thead th").last
    expect(last_column).to_have_text("9")
    assert inside(last_column.bounding_box()), (last_column.bounding_box(), outer)
    assert inside(card.locator("table.matrix tbody tr").last.locator("td").last.bounding_box())
    hidden = card.locator(".scroll-x").evaluate("el => el.scrollWidth - el.clientWidth")
    assert hidden <= 0, f"{hidden} px of the matrix are scrolled out of the card"
    assert inside(card.locator(".mono").first.bounding_box()), "the data path runs out of the card"

"""The page on a phone and /docs without a network (the `browser` fixture: tests/conftest.py).

Set MNISTLAB_SCREENSHOT_DIR=docs to refresh the docs' phone screenshot (docs/serve-phone.png).
"""

import pytest

from tests.helpers import save_screenshot, start_server, stop_server

SEVEN = [(70, 60), (200, 60), (130, 230)]  # In canvas units (280x280).


@pytest.fixture(scope="module")
def url():
    process, address = start_server()
    yield address
    stop_server(process)


def offline(page, url):
    """Every request outside the server fails, as on a machine without a network."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
               else route.abort())  # fmt: skip


@pytest.mark.parametrize("width, height", [(375, 667), (390, 844), (320, 568)])
def test_on_a_phone_the_answer_is_in_view_while_drawing(browser, url, width, height, tmp_path):
    context = browser.new_context(
        viewport={"width": width, "height": height}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    offline(page, url)
    page.goto(url)
    hint = page.locator("#shortcuts").inner_text()
    assert "Ctrl" not in hint and "Escape" not in hint and "finger" in hint
    canvas = page.locator("#canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["y"] + box["height"] <= height + 1, box  # the whole square, without scrolling

    def at(x, y):
        return box["x"] + x / 280 * box["width"], box["y"] + y / 280 * box["height"]

    page.mouse.move(*at(*SEVEN[0]))
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(SEVEN, SEVEN[1:]):
        for step in range(1, 13):
            page.mouse.move(*at(x0 + (x1 - x0) * step / 12, y0 + (y1 - y0) * step / 12))
    page.wait_for_function("document.getElementById('digit').textContent !== ''")
    # Still drawing: the answer so far is on screen beside the finger.
    for selector in ("#digit", "#confidence", "#bars"):
        shown = page.locator(selector).bounding_box()
        assert shown["y"] >= 0 and shown["y"] + shown["height"] <= height, (selector, shown)
    page.mouse.up()
    page.wait_for_selector('#result-panel[aria-busy="false"]')
    assert page.locator("#digit").inner_text() == "7"
    for selector in ("#undo", "#clear", "label[for=file]"):
        assert page.locator(selector).bounding_box()["height"] >= 44
    page.screenshot(path=tmp_path / "phone.png")
    if (width, height) == (390, 844):
        save_screenshot(page, "serve-phone.png")
    context.close()


def test_errors_on_the_page_are_in_plain_words(browser, url):
    page = browser.new_page(viewport={"width": 375, "height": 667})
    page.goto(url)
    page.set_input_files(
        "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.wait_for_selector('#result-panel[aria-busy="false"]')
    message = page.locator("#message").inner_text()
    assert message == "That file isn't an image I can read: try a PNG or JPEG photo."
    page.close()


def test_docs_render_with_the_network_blocked(browser, url):
    page = browser.new_page()
    offline(page, url)
    blocked = []
    page.on("requestfailed", lambda request: blocked.append(request.url))
    page.goto(url + "docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "mnistlab" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path", has_text="/api/predict").count() >= 1
    assert blocked == []
    page.close()

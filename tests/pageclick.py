"""A click on the launcher page that lands where Chromium shows the element.

Chromium runs each sandboxed preview frame (`#preview iframe`) in a renderer process of its own
and routes a mouse event by the layout it last composited. Right after a scroll, until such a
frame has drawn again (a fraction of a second on a busy machine), that is still the layout from
before the scroll. Playwright's click scrolls the element into view and clicks at once, so a
button below a preview often took the click into the preview frame that used to be at that spot
(the page saw no event; the frame, which has no scripts, did nothing). Seen with the plotly
preview: 3 of 10 clicks reached the button; 10 of 10 without a scroll, and 6 of 6 with
`--disable-features=IsolateSandboxedIframes` (the frame in the page's process).
"""
from __future__ import annotations


def click_without_scrolling(page, locator) -> None:
    """Make the viewport as tall as the page (nothing to scroll), then click as a user would."""
    size = page.viewport_size or {"width": 1280, "height": 720}
    height = page.evaluate("() => document.documentElement.scrollHeight")
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height})
    locator.click()

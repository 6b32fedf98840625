"""The demo page at `/`, driven in a real browser (Debian's chromium through Playwright).

Each test does what a visitor does: draws with the mouse or a finger, uploads an MNIST digit,
moves a pose slider with the keyboard, or sends something that is not a digit, and checks what
the page shows. Screenshots of the desktop and phone layouts land in `test-artifacts/`.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from model.data import Mnist

# Reads an <img> back as grey levels, so tests compare what is shown, not only its URL.
IMAGE_PIXELS = """async (img) => {
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from(rgba.filter((_, i) => i % 4 === 0));
}"""


def mnist_png(mnist: Mnist, index: int, path: Path) -> int:
    """Writes MNIST test image `index` as a PNG (white on black, 28x28); returns its label."""
    Image.fromarray(mnist.test.images[index]).save(path)
    return int(mnist.test.labels[index])


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draws strokes on the pad with the mouse; points are fractions of the pad's size."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()


def wait_for_prediction(page) -> None:
    page.wait_for_function("document.body.dataset.state === 'done'")


def upload(page, path: Path) -> None:
    page.set_input_files("#file", str(path))


def test_a_drawn_seven_is_predicted(page):
    draw(page, [[(0.25, 0.22), (0.75, 0.22), (0.45, 0.85)]])
    page.click("#predict")
    wait_for_prediction(page)
    assert page.text_content("#digit") == "7"
    assert page.locator("#bars li.win").get_attribute("data-digit") == "7"


def test_an_uploaded_mnist_digit_is_predicted_with_its_images(page, mnist, tmp_path):
    label = mnist_png(mnist, 0, tmp_path / "digit.png")
    upload(page, tmp_path / "digit.png")
    wait_for_prediction(page)

    assert page.text_content("#digit") == str(label)
    assert page.locator("#bars li").count() == 10
    assert page.locator("#sliders input[type=range]").count() == 16
    for image in ("#input-img", "#reconstruction", "#tweak"):
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=page.locator(image).element_handle()
        )
    # the tweak grid: 16 rows (pose dimensions) by 11 columns (steps), square cells
    width, height = page.eval_on_selector("#tweak", "img => [img.naturalWidth, img.naturalHeight]")
    assert width * 16 == height * 11
    # pose dimensions are numbered 0-15 on the page, as the API's `dims` numbers them
    assert page.locator("#tweak-rows li").all_text_contents() == [str(d) for d in range(16)]
    assert page.text_content("label[for=pose-0]") == "dim 00"


def test_a_dropped_mnist_digit_is_predicted(page, mnist, tmp_path):
    label = mnist_png(mnist, 2, tmp_path / "dropped.png")
    data = base64.b64encode((tmp_path / "dropped.png").read_bytes()).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragover", { bubbles: true, dataTransfer: transfer }));
            zone.dispatchEvent(new DragEvent("drop", { bubbles: true, dataTransfer: transfer }));
        }""",
        data,
    )
    wait_for_prediction(page)
    assert page.text_content("#digit") == str(label)


def test_moving_a_pose_slider_redraws_the_reconstruction(page, mnist, tmp_path, artifacts):
    mnist_png(mnist, 1, tmp_path / "digit.png")
    upload(page, tmp_path / "digit.png")
    wait_for_prediction(page)
    recon = page.locator("#reconstruction")
    before = recon.evaluate(IMAGE_PIXELS)

    in_flight, most = [0], [0]

    def sent(request):
        if "/v1/decode" in request.url:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

    def done(request):
        if "/v1/decode" in request.url:
            in_flight[0] -= 1

    page.on("request", sent)
    page.on("requestfinished", done)
    page.on("requestfailed", done)

    slider = page.get_by_label("pose dimension 0", exact=True)  # numbered as the API's dims
    slider.focus()
    for _ in range(25):  # +0.25: the far end of the paper's range
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#pose-0').closest('.slider').classList.contains('moved')"
    )
    page.wait_for_function("() => !document.querySelector('#reconstruction').classList.contains('updating')")

    assert page.text_content("#pose-0 ~ output") == "+0.25"
    assert recon.get_attribute("src").startswith("blob:")
    after = recon.evaluate(IMAGE_PIXELS)
    assert len(after) == len(before)
    assert sum(abs(a - b) for a, b in zip(after, before, strict=True)) > 0, (
        "the reconstruction did not change"
    )
    assert most[0] == 1, f"decode requests piled up: {most[0]} in flight at once"

    page.screenshot(path=artifacts / "demo-page.png", full_page=True)


def test_a_blank_canvas_shows_the_api_error_in_the_page(page):
    page.click("#predict")
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "digit" in message.text_content().lower()
    assert page.evaluate("document.body.dataset.state") == "error"


def test_a_file_that_is_not_an_image_shows_the_api_error(page, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a digit\n")
    upload(page, path)
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "image" in message.text_content().lower()


def test_a_drawn_square_is_called_not_a_digit_with_its_reconstruction_beside_it(page, artifacts):
    draw(page, [[(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)]])
    page.click("#predict")
    wait_for_prediction(page)
    assert "this does not look like a digit to the model" in page.text_content("#message").lower()
    check = page.locator("#digit-check")
    assert check.is_visible() and "reconstruction error" in check.text_content()
    assert page.locator("#input-img").is_visible() and page.locator("#reconstruction").is_visible()
    page.screenshot(path=artifacts / "demo-page-not-a-digit.png", full_page=True)


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_a_finger_draws_a_one_on_a_phone(open_demo, viewport, artifacts):
    page = open_demo(viewport=viewport, is_mobile=True, has_touch=True, device_scale_factor=2)
    box = page.locator("#pad").bounding_box()
    x = box["x"] + box["width"] * 0.5
    ys = [box["y"] + box["height"] * (0.15 + 0.07 * i) for i in range(11)]
    touch(page, [(x, y) for y in ys])
    wait_for_prediction(page)  # the page predicts by itself when the finger lifts
    page.screenshot(path=artifacts / "demo-page-phone.png", full_page=True)
    assert page.text_content("#digit") == "1"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"


def touch(page, points: list[tuple[float, float]]) -> None:
    """One finger stroke through the DevTools protocol (Playwright's sync API only taps)."""
    cdp = page.context.new_cdp_session(page)

    def send(kind: str, point: tuple[float, float] | None) -> None:
        touches = [] if point is None else [{"x": point[0], "y": point[1], "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touches})

    send("touchStart", points[0])
    for point in points[1:]:
        send("touchMove", point)
    send("touchEnd", None)


def test_the_page_explains_lengths_and_poses(page):
    text = page.text_content("main").lower()
    assert "length" in text and "pose" in text

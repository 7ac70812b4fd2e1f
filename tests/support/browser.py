"""Headless Chromium for console tests: Debian's chromium driven by Playwright (never
`playwright install`, which downloads a browser and fails here)."""


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def login(browser, url: str, user: str, password: str, init_script: str | None = None,
          viewport: tuple[int, int] = (1400, 900), **context):
    """context: more browser-context options (e.g. permissions); init_script runs before the page's own."""
    # bypass_csp: only so the test may evaluate its own probes; the page itself runs under the CSP
    ctx = browser.new_context(**{"viewport": {"width": viewport[0], "height": viewport[1]}, "bypass_csp": True,
                                 **context})
    if init_script:
        ctx.add_init_script(init_script)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.fill("#login-user", user)
    page.fill("#login-pass", password)
    page.click("#login-btn")
    page.wait_for_function("window.RE && window.RE.ready === true", timeout=10000)
    page.wait_for_function("window.RE.live === true", timeout=10000)
    return page, errors

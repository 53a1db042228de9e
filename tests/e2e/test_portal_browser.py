"""The web portal in a real browser: headless Chromium (Debian's, driven by Selenium) against
a `grantledger run` process on PostgreSQL and Redis (worker and beat children, the sandbox
Identity Center in the process) signing people in through a real OpenID Connect provider
process (oidc-provider-mock). Controls are found by their visible label or button text, as
a person (or a screen reader) finds them. Each page's screenshot goes to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
import redis

from tests import waiting
from tests.e2e.conftest import REPO
from tests.stack_support import database_beside, free_port

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.skipif(not shutil.which("chromedriver"),
                                 reason="needs Debian's chromium and chromium-driver")]

DEADLINE = 90.0
PORTAL_REDIS_DB = 10
REQUEST_SECONDS = 60  # long enough to see ACTIVE on a loaded machine, short for the expiry
GRANTLEDGER = str(Path(sys.executable).with_name("grantledger"))
SCREENSHOTS = REPO / "docs" / "screenshots"
SESSION_SECRET = "portal-e2e-" + "s" * 40
PEOPLE = {"alice": "alice@example.com", "bob": "bob@example.com",
          "mallory": "mallory@elsewhere.example"}
# claims a provider vouches for poorly: alice's address, typed in and never verified
UNVERIFIED = {"email": "alice@example.com", "email_verified": False,
              "preferred_username": "eve"}


@dataclass
class Portal:
    url: str
    sandbox: dict[str, str]  # the GRANTLEDGER_* settings of run's in-process sandbox
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def eventually(condition: Callable[[], Any], *, what: str, portal: Portal,
               timeout: float = DEADLINE) -> Any:
    return waiting.eventually(condition, what=what, timeout=timeout, every=0.3,
                              tail=portal.tail)


@contextmanager
def process(args: list[str], *, cwd: Path, env: dict[str, str], log: Path
            ) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        started = subprocess.Popen(args, cwd=cwd, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield started
    finally:
        if started.poll() is None:
            started.send_signal(signal.SIGTERM)
            try:
                started.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(started.pid, signal.SIGKILL)
                started.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


@contextmanager
def identity_provider(tmp: Path) -> Iterator[str]:
    """oidc-provider-mock as a process, with alice, bob and mallory (unknown) registered."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "oidc_provider_mock", "--port", str(port)],
                 cwd=tmp, env=dict(os.environ), log=tmp / "idp.log"):
        waiting.eventually(lambda: answers(f"{issuer}/.well-known/openid-configuration"),
                           what="OIDC provider started", timeout=30,
                           tail=(tmp / "idp.log").read_text)
        for name, email in PEOPLE.items():
            claims = {"email": email, "preferred_username": name, "name": name.title()}
            assert httpx.put(f"{issuer}/users/{quote(name)}", json=claims).status_code == 204
        assert httpx.put(f"{issuer}/users/eve", json=UNVERIFIED).status_code == 204
        yield issuer


def sandbox_exports(log: Path) -> dict[str, str]:
    lines = [line.strip().removeprefix("export ") for line in log.read_text().splitlines()
             if line.strip().startswith("export GRANTLEDGER_")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_url: str
           ) -> Iterator[Portal]:
    tmp = tmp_path_factory.mktemp("portal")
    broker = redis_url.rsplit("/", 1)[0] + f"/{PORTAL_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with identity_provider(tmp) as issuer, database_beside(pg_url, prefix="gl_portal") as db:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")} | {
            "PYTHONPATH": str(REPO), "GRANTLEDGER_DATABASE_URL": db,
            "GRANTLEDGER_BROKER_URL": broker, "GRANTLEDGER_API_TOKEN": "portal-e2e-" + "x" * 32,
            "GRANTLEDGER_OIDC_ISSUER": issuer, "GRANTLEDGER_OIDC_CLIENT_ID": "grantledger",
            "GRANTLEDGER_OIDC_CLIENT_SECRET": "portal-e2e-client",
            "GRANTLEDGER_PORTAL_URL": url, "GRANTLEDGER_SESSION_SECRET": SESSION_SECRET,
            "GRANTLEDGER_SSO_START_URL": "https://example.awsapps.com/start",
            "GRANTLEDGER_SANDBOX_SETTLE_DELAY": "0.2", "GRANTLEDGER_POLL_FIRST_DELAY": "0.2",
            "GRANTLEDGER_POLL_MAX_DELAY": "1.0"}
        log = tmp / "run.log"
        with process([GRANTLEDGER, "run", "--port", str(port)], cwd=tmp, env=env, log=log):
            running = Portal(url=url, sandbox={}, log=log)
            eventually(lambda: answers(f"{url}/healthz"), what="run started", portal=running)
            running.sandbox = eventually(lambda: sandbox_exports(log), what="sandbox settings",
                                         portal=running)
            tools = env | running.sandbox
            for args in (["import", "--default-owner", "alice"],
                         ["apply", "-f", str(REPO / "tests/data/portal")]):
                done = subprocess.run([GRANTLEDGER, *args], cwd=tmp, env=tools,
                                      capture_output=True, text=True, timeout=DEADLINE)
                assert done.returncode == 0, done.stderr
            yield running


@contextmanager
def browser(width: int = 1280) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", f"--window-size={width},1000"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def field(driver: WebDriver, label: str) -> WebElement:
    """The control whose visible label starts with ``label``."""
    found = driver.find_element(By.XPATH, f"//label[starts-with(normalize-space(), '{label}')]")
    return driver.find_element(By.ID, found.get_attribute("for"))


def button(driver: WebDriver, text: str, within: WebElement | None = None) -> WebElement:
    return (within or driver).find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def press(driver: WebDriver, control: WebElement) -> None:
    """Click a control that loads a new page, and wait until the new page is there."""
    page = driver.find_element(By.TAG_NAME, "html")
    control.click()
    WebDriverWait(driver, DEADLINE).until(staleness_of(page))


def buttons(driver: WebDriver, text: str) -> list[WebElement]:
    driver.implicitly_wait(0)
    try:
        return driver.find_elements(By.XPATH, f"//button[normalize-space()='{text}']")
    finally:
        driver.implicitly_wait(5)


def heading(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def sign_in(driver: WebDriver, who: str) -> None:
    """At the provider's form (where a signed-out visit was sent), sign in as ``who``."""
    driver.find_element(By.NAME, "sub").send_keys(who)
    press(driver, button(driver, "Authorize"))


def shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 140, 600), 2400))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def holds(portal: Portal, user: str, account: str, permission_set_name: str) -> bool:
    """Whether the sandbox Identity Center has ``user`` assigned there (asked with boto3)."""
    options = {"endpoint_url": portal.sandbox["GRANTLEDGER_AWS_ENDPOINT_URL"], "region_name":
               "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    store, sso = boto3.client("identitystore", **options), boto3.client("sso-admin", **options)
    instance = portal.sandbox["GRANTLEDGER_INSTANCE_ARN"]
    user_id = store.get_user_id(
        IdentityStoreId=portal.sandbox["GRANTLEDGER_IDENTITY_STORE_ID"],
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName",
                                                 "AttributeValue": user}})["UserId"]
    names = {arn: sso.describe_permission_set(InstanceArn=instance, PermissionSetArn=arn)
             ["PermissionSet"]["Name"]
             for arn in sso.list_permission_sets(InstanceArn=instance)["PermissionSets"]}
    return any(row["AccountId"] == account and names[row["PermissionSetArn"]] ==
               permission_set_name
               for row in sso.list_account_assignments_for_principal(
                   InstanceArn=instance, PrincipalId=user_id,
                   PrincipalType="USER")["AccountAssignments"])


def forge_post(driver: WebDriver, action: str, fields: dict[str, str]) -> None:
    """Submit a form the page never offered (what a forger or a stale tab sends)."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.execute_script(
        "const form = document.createElement('form'); form.method = 'post';"
        "form.action = arguments[0];"
        "for (const [name, value] of Object.entries(arguments[1])) {"
        "  const input = document.createElement('input'); input.type = 'hidden';"
        "  input.name = name; input.value = value; form.appendChild(input); }"
        "document.body.appendChild(form); form.submit();", action, fields)
    WebDriverWait(driver, DEADLINE).until(staleness_of(page))


def csrf_of(driver: WebDriver) -> str:
    return driver.find_element(By.NAME, "csrf_token").get_attribute("value")


def test_a_request_is_asked_reviewed_provisioned_and_expires_in_the_browser(
        portal: Portal) -> None:
    production = "111111111111"
    with browser() as alice, browser() as bob, browser() as watcher:
        # a signed-out visit goes to sign-in, and comes back to the page afterwards
        alice.get(f"{portal.url}/request")
        assert "/authorize" in alice.current_url, alice.current_url
        sign_in(alice, "alice")
        assert alice.current_url == f"{portal.url}/request"
        shot(alice, "request-access")

        field(alice, "Search").send_keys("Production")
        press(alice, button(alice, "Search"))
        field(alice, "ReadOnlyAccess on Production").click()
        field(alice, "Duration").send_keys(f"{REQUEST_SECONDS}s")
        field(alice, "Reason").send_keys("INC-4711: read the prod logs")
        press(alice, button(alice, "Submit request"))
        request_url = alice.current_url
        request_id = request_url.rsplit("/", 1)[1]
        assert re.fullmatch(r".*/requests/[\w-]+", request_url), request_url
        assert alice.find_element(By.ID, "request-state").text == "PENDING"
        assert not buttons(alice, "Approve")  # never on one's own request
        shot(alice, "request-pending")

        # a forged approval of her own request (with a valid CSRF token) is refused
        forge_post(alice, f"{request_url}/approve", {"csrf_token": csrf_of(alice)})
        assert heading(alice) == "Not done"
        alice.get(request_url)
        assert alice.find_element(By.ID, "request-state").text == "PENDING"

        bob.get(f"{portal.url}/reviews")
        sign_in(bob, "bob")
        # bob's other tab on the pending request: no Extend yet
        watcher.get(f"{portal.url}/reviews")
        sign_in(watcher, "bob")
        watcher.get(request_url)
        assert buttons(watcher, "Approve") and not buttons(watcher, "Extend")
        assert bob.current_url == f"{portal.url}/reviews"
        card = bob.find_element(By.XPATH, "//article[.//*[contains(., 'INC-4711')]]")
        assert "alice" in card.text and f"{production}/ReadOnlyAccess" in card.text
        shot(bob, "reviews")
        # a POST without its CSRF token is refused and changes nothing
        forge_post(bob, f"{request_url}/approve", {"comment": "no token"})
        assert heading(bob) == "Form refused"
        bob.get(f"{portal.url}/reviews")
        card = bob.find_element(By.XPATH, "//article[.//*[contains(., 'INC-4711')]]")
        press(bob, button(bob, "Approve", within=card))
        assert bob.current_url == request_url

        # bob's other tab turns APPROVED without a reload, and offers Extend then
        eventually(lambda: buttons(watcher, "Extend") and not buttons(watcher, "Approve"),
                   what="the Extend form once approved, without a reload", portal=portal)
        assert watcher.current_url == request_url
        # alice's page follows provisioning without a reload, to ACTIVE
        eventually(lambda: "ACTIVE" in alice.find_element(By.ID, "progress").text,
                   what="the request page shows the grant ACTIVE", portal=portal)
        assert alice.current_url == request_url
        shot(alice, "request-active")
        assert holds(portal, "alice", production, "ReadOnlyAccess")

        alice.get(f"{portal.url}/")
        row = alice.find_element(By.XPATH, f"//tr[td[contains(., '{production}')] and "
                                           "td[normalize-space()='ReadOnlyAccess']]")
        assert f"request:{request_id}" in row.text
        left = row.find_element(By.CLASS_NAME, "left").text
        assert re.fullmatch(r"(\d+m)?(\d+s)?", left) and left, left
        shot(alice, "my-access")

        eventually(lambda: not holds(portal, "alice", production, "ReadOnlyAccess"),
                   what="the assignment deleted after its expiry", portal=portal,
                   timeout=REQUEST_SECONDS + DEADLINE)
        alice.get(f"{portal.url}/")
        assert f"request:{request_id}" not in alice.find_element(By.TAG_NAME, "main").text


def test_an_owner_adds_and_removes_a_member(portal: Portal) -> None:
    with browser() as alice:
        alice.get(f"{portal.url}/lists")
        sign_in(alice, "alice")
        press(alice, alice.find_element(By.LINK_TEXT, "May request read-only access"))
        field(alice, "Member name").send_keys("carol")
        field(alice, "Expires after").send_keys("30d")
        press(alice, button(alice, "Add member"))
        assert button(alice, "Remove carol")
        shot(alice, "access-list")
        press(alice, button(alice, "Remove carol"))
        assert not buttons(alice, "Remove carol")
        alice.get(f"{portal.url}/lists")
        shot(alice, "access-lists")


def test_auditors_see_audit_and_status(portal: Portal) -> None:
    with browser() as bob:  # no auditor role: no Audit, no Status
        bob.get(f"{portal.url}/status")
        sign_in(bob, "bob")
        assert heading(bob) == "Not for you"
        assert not bob.find_elements(By.LINK_TEXT, "Audit")
    with browser() as alice:  # an auditor through the auditors list
        alice.get(f"{portal.url}/audit")
        sign_in(alice, "alice")
        field(alice, "Account id").send_keys("111111111111")
        press(alice, button(alice, "Search"))
        assert "Audit trail" in alice.find_element(By.TAG_NAME, "main").text
        shot(alice, "audit")
        alice.get(f"{portal.url}/status")
        press(alice, button(alice, "Sync now"))
        assert "A full sync is queued" in alice.find_element(By.TAG_NAME, "main").text
        shot(alice, "status")
    with browser(width=390) as phone:
        phone.get(f"{portal.url}/")
        sign_in(phone, "alice")
        shot(phone, "my-access-phone")


def test_an_unknown_person_is_not_enrolled_and_gets_no_session(portal: Portal) -> None:
    with browser() as mallory:
        mallory.get(f"{portal.url}/")
        sign_in(mallory, "mallory")
        assert heading(mallory) == "Not enrolled"
        assert "mallory@elsewhere.example" in mallory.find_element(By.TAG_NAME, "main").text
        shot(mallory, "not-enrolled")
        mallory.get(f"{portal.url}/")
        assert "/authorize" in mallory.current_url  # still signed out


def test_an_unverified_email_signs_nobody_in(portal: Portal) -> None:
    with browser() as eve:
        eve.get(f"{portal.url}/")
        sign_in(eve, "eve")
        assert heading(eve) == "Not enrolled"


def test_signing_out_ends_the_session(portal: Portal) -> None:
    with browser() as bob:
        bob.get(f"{portal.url}/")
        sign_in(bob, "bob")
        press(bob, button(bob, "Sign out"))
        assert heading(bob) == "Signed out"
        bob.get(f"{portal.url}/reviews")
        assert "/authorize" in bob.current_url

"""What works but is unsafe is said at start and by doctor (``Settings.warnings``)."""

from __future__ import annotations

from pydantic import SecretStr

from workers.settings import Settings


def test_a_weak_admin_token_is_warned_about_and_a_strong_one_is_not() -> None:
    weak = Settings(api_token=SecretStr("changeme"))
    assert any("GRANTLEDGER_API_TOKEN is weak" in w for w in weak.warnings())
    strong = Settings(api_token=SecretStr("q7N2-vLx9_" + "Zr4KpW8sTb3Jm6Hc1Fy5Dg0Ae"))
    assert not any("GRANTLEDGER_API_TOKEN" in w for w in strong.warnings())

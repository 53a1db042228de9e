"""Slack: the Bolt app served at /slack/events (``bolt``), the Web API adapter the
notification channel is given (``web``), who a Slack user is in the ledger (``people``),
the request modal (``modal``) and the app manifest (``manifest``)."""

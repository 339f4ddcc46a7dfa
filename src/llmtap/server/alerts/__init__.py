"""Alerts and budgets (issue 16): rules and budgets (``rules``), their evaluation inside
``llmtap serve`` from the stats aggregates (``evaluate``), notifications (``notify``), and the
HTTP API (``api``)."""
